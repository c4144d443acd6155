//! Issue 15 §3 and §4 through Poem's test client: `text/plain` for the seed's clients, and the
//! caching a CDN and a polling client use (`ETag`, `304`, `Cache-Control`, `Vary`). Beside
//! `http_api.rs` (the rest of the HTTP semantics) so that each file stays readable.

use std::sync::Arc;
use std::time::Duration;

use btc_contract::{Dispersion, PriceState, SCHEMA_VERSION, Tick, WindowAverage};
use chrono::{DateTime, Utc};
use frontend::App;
use frontend::cache::StateCache;
use frontend::server::endpoint;
use poem::http::StatusCode;
use poem::test::{TestClient, TestResponse};

const STALE_AFTER: Duration = Duration::from_secs(30);
const PRICE_ROUTES: [&str; 4] = ["/btc/USD", "/btc/average", "/btc/USD/average", "/eth/USD"];

fn state(sequence: u64, price: f64) -> PriceState {
    let time = Utc::now();
    PriceState {
        schema_version: SCHEMA_VERSION,
        latest: Tick {
            schema_version: SCHEMA_VERSION,
            pair: "BTC-USD".into(),
            time,
            oldest_quote_time: Some(time),
            price,
            dispersion: Dispersion { low: price, high: price, std_dev: 0.0, used: 3 },
            sources: vec![],
        },
        average: WindowAverage {
            window_seconds: 600,
            time_weighted: price - 0.5,
            mean: price - 1.0,
            samples: 3,
            from: time - chrono::Duration::seconds(10),
            to: time,
            covered_seconds: 10.0,
            gap_seconds: 590.0,
            complete: false,
        },
        stream_sequence: sequence,
        stream_created: DateTime::from_timestamp_millis(1_764_000_000_123),
        open_candles: Vec::new(),
    }
}

fn eth(mut state: PriceState) -> PriceState {
    state.latest.pair = "ETH-USD".into();
    state
}

fn client_with(cache: &Arc<StateCache>) -> TestClient<poem::endpoint::BoxEndpoint<'static>> {
    TestClient::new(endpoint(App::BitcoinApi, cache.clone(), STALE_AFTER))
}

fn filled(sequence: u64, price: f64) -> (Arc<StateCache>, TestClient<poem::endpoint::BoxEndpoint<'static>>) {
    let cache = Arc::new(StateCache::default());
    cache.set(state(sequence, price));
    cache.set(eth(state(sequence + 1, 3_000.25)));
    let client = client_with(&cache);
    (cache, client)
}

fn header(response: &TestResponse, name: &str) -> Option<String> {
    response.0.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn text_of(response: TestResponse) -> String {
    response.0.into_body().into_string().await.expect("body")
}

#[tokio::test]
async fn accept_text_plain_gets_the_bare_number_the_seed_printed() {
    let (_, cli) = filled(7, 97_012.35);
    for (path, number) in [
        ("/btc/USD", "97012.35"),
        ("/btc/average", "97011.85"),
        ("/btc/USD/average", "97011.85"),
        ("/eth/USD", "3000.25"),
    ] {
        for accept in ["text/plain", "text/plain; charset=utf-8", "application/json;q=0.5, text/plain", "text/*"] {
            let response = cli.get(path).header("accept", accept).send().await;
            response.assert_status_is_ok();
            response.assert_content_type("text/plain; charset=utf-8");
            assert_eq!(text_of(response).await, number, "{path} with {accept}");
        }
    }
}

#[tokio::test]
async fn json_stays_the_default_whatever_else_is_accepted() {
    let (_, cli) = filled(7, 97_012.35);
    for path in PRICE_ROUTES {
        for accept in
            [None, Some("*/*"), Some("application/json"), Some("text/plain, application/json"), Some("image/png")]
        {
            let mut request = cli.get(path);
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            let response = request.send().await;
            response.assert_status_is_ok();
            response.assert_content_type("application/json; charset=utf-8");
            let body: serde_json::Value = serde_json::from_str(&text_of(response).await).expect("JSON");
            assert!(body["pair"].is_string(), "{path} with {accept:?}: {body}");
        }
    }
}

#[tokio::test]
async fn errors_stay_json_when_text_is_asked_for() {
    let cache = Arc::new(StateCache::default());
    let cli = client_with(&cache);
    for (path, status) in [("/btc/USD", StatusCode::SERVICE_UNAVAILABLE), ("/btc/JPY", StatusCode::NOT_FOUND)] {
        let response = cli.get(path).header("accept", "text/plain").send().await;
        response.assert_status(status);
        response.assert_content_type("application/json; charset=utf-8");
        response.assert_header("cache-control", "no-store");
        assert!(header(&response, "etag").is_none(), "{path}: an error has no ETag");
    }
}

#[tokio::test]
async fn price_answers_carry_a_weak_etag_of_the_state_and_representation() {
    let (_, cli) = filled(7, 97_012.35);
    let json = cli.get("/btc/USD").send().await;
    json.assert_header("etag", "W/\"1764000000123-7-json\"");
    json.assert_header("vary", "accept");
    let text = cli.get("/btc/USD").header("accept", "text/plain").send().await;
    text.assert_header("etag", "W/\"1764000000123-7-text\"");
    let eth = cli.get("/eth/USD/average").send().await;
    eth.assert_header("etag", "W/\"1764000000123-8-json\"");
}

#[tokio::test]
async fn if_none_match_is_a_304_without_a_body_until_the_state_changes() {
    let (cache, cli) = filled(7, 97_012.35);
    for path in PRICE_ROUTES {
        let first = cli.get(path).send().await;
        let etag = header(&first, "etag").expect("etag");
        for if_none_match in
            [etag.clone(), etag.trim_start_matches("W/").to_string(), format!("\"x\", {etag}"), "*".into()]
        {
            let again = cli.get(path).header("if-none-match", &if_none_match).send().await;
            again.assert_status(StatusCode::NOT_MODIFIED);
            again.assert_header("etag", &etag);
            again.assert_header("cache-control", "public, max-age=1");
            again.assert_header("vary", "accept");
            assert!(text_of(again).await.is_empty(), "{path}: a 304 has no body");
        }
        // The other representation's tag does not match.
        let text = cli.get(path).header("accept", "text/plain").header("if-none-match", &etag).send().await;
        text.assert_status_is_ok();
    }
    let etag = header(&cli.get("/btc/USD").send().await, "etag").expect("etag");
    cache.set(state(9, 97_100.0));
    let changed = cli.get("/btc/USD").header("if-none-match", &etag).send().await;
    changed.assert_status_is_ok();
    changed.assert_header("etag", "W/\"1764000000123-9-json\"");
}

#[tokio::test]
async fn each_route_has_its_cache_control() {
    let (_, cli) = filled(7, 97_012.35);
    for path in PRICE_ROUTES.into_iter().chain(["/pairs"]) {
        let response = cli.get(path).send().await;
        response.assert_status_is_ok();
        response.assert_header("cache-control", "public, max-age=1");
    }
    for path in ["/readiness", "/liveness", "/btc/JPY", "/btc/GBP", "/no/such/thing"] {
        cli.get(path).send().await.assert_header("cache-control", "no-store");
    }
    cli.post("/btc/USD").send().await.assert_header("cache-control", "no-store");
    for path in ["/openapi.json", "/openapi.yaml", "/docs"] {
        cli.get(path).send().await.assert_header("cache-control", "public, max-age=300");
    }
    let rest = TestClient::new(endpoint(App::RestApi, Arc::new(StateCache::default()), STALE_AFTER));
    rest.get("/").send().await.assert_header("cache-control", "no-store");
}

#[tokio::test]
async fn a_stale_price_is_not_cached_and_has_no_etag() {
    let cache = Arc::new(StateCache::default());
    let mut old = state(7, 97_012.35);
    old.latest.oldest_quote_time = Some(Utc::now() - chrono::Duration::seconds(60));
    cache.set(old);
    let response = client_with(&cache).get("/btc/USD").header("if-none-match", "*").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    response.assert_header("cache-control", "no-store");
    response.assert_header("retry-after", "5");
    assert!(header(&response, "etag").is_none());
}
