//! The HTTP semantics of both frontends, exercised through Poem's test client over a state cache
//! filled by hand (the NATS side is covered by the end-to-end tests).

use std::sync::Arc;
use std::time::Duration;

use btc_contract::{Dispersion, PriceState, QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick, WindowAverage};
use chrono::{DateTime, Utc};
use frontend::App;
use frontend::cache::StateCache;
use frontend::server::endpoint;
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use serde_json::Value;

const STALE_AFTER: Duration = Duration::from_secs(30);

fn state_at(time: DateTime<Utc>, sequence: u64, price: f64) -> PriceState {
    PriceState {
        schema_version: SCHEMA_VERSION,
        latest: Tick {
            schema_version: SCHEMA_VERSION,
            pair: "BTC-USD".into(),
            time,
            oldest_quote_time: Some(time),
            price,
            dispersion: Dispersion { low: price - 5.0, high: price + 5.0, std_dev: 4.0, used: 3 },
            sources: vec![
                SourceQuote {
                    source: "kraken".into(),
                    price: price - 5.0,
                    quote_time: time,
                    status: QuoteStatus::Used,
                },
                SourceQuote {
                    source: "gemini".into(),
                    price: price * 1.2,
                    quote_time: time,
                    status: QuoteStatus::Outlier,
                },
            ],
        },
        average: WindowAverage {
            window_seconds: 600,
            time_weighted: price - 1.5,
            mean: price - 1.0,
            samples: 120,
            from: time - chrono::Duration::seconds(120),
            to: time,
            covered_seconds: 118.0,
            gap_seconds: 482.0,
            complete: false,
        },
        stream_sequence: sequence,
        stream_created: Some(DateTime::UNIX_EPOCH),
        open_candles: Vec::new(),
    }
}

fn client(app: App, state: Option<PriceState>) -> TestClient<poem::endpoint::BoxEndpoint<'static>> {
    let cache = Arc::new(StateCache::default());
    if let Some(state) = state {
        cache.set(state);
    }
    TestClient::new(endpoint(app, cache, STALE_AFTER))
}

async fn json_of(response: poem::test::TestResponse) -> Value {
    let text = response.0.into_body().into_string().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test]
async fn current_price_returns_the_tick_with_its_sources() {
    let now = Utc::now();
    let cli = client(App::BitcoinApi, Some(state_at(now, 7, 97_000.0)));
    let response = cli.get("/btc/USD").send().await;
    response.assert_status_is_ok();
    response.assert_content_type("application/json; charset=utf-8");
    let body = json_of(response).await;
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["price"], 97_000.0);
    assert!(body["age_seconds"].as_f64().expect("age") < 5.0);
    assert_eq!(body["dispersion"]["used"], 3);
    assert_eq!(body["sources"][0]["source"], "kraken");
    assert_eq!(body["sources"][1]["status"], "outlier");
}

#[tokio::test]
async fn average_reports_both_averages_and_a_partial_window_in_fields() {
    let cli = client(App::BitcoinApi, Some(state_at(Utc::now(), 7, 97_000.0)));
    let response = cli.get("/btc/average").send().await;
    response.assert_status_is_ok();
    let body = json_of(response).await;
    assert_eq!(body["time_weighted_average"], 96_998.5);
    assert_eq!(body["mean"], 96_999.0);
    assert_eq!(body["window_seconds"], 600);
    assert_eq!(body["samples"], 120);
    assert_eq!((body["covered_seconds"].as_f64(), body["gap_seconds"].as_f64()), (Some(118.0), Some(482.0)));
    assert_eq!(body["complete"], false);
}

/// The bodies are encoded once per state, not by poem-openapi per request: each must still parse
/// as its documented type, with every field, the times intact and a fresh `age_seconds`.
#[tokio::test]
async fn pre_encoded_bodies_parse_as_their_documented_types() {
    use frontend::api::bodies::{AveragePrice, CurrentPrice};
    use poem_openapi::types::ParseFromJSON;
    let time = Utc::now() - chrono::Duration::milliseconds(1500);
    let cli = client(App::BitcoinApi, Some(state_at(time, 7, 97_000.25)));

    let price = CurrentPrice::parse_from_json(Some(json_of(cli.get("/btc/USD").send().await).await))
        .unwrap_or_else(|e| panic!("/btc/USD does not match its schema: {}", e.into_message()));
    assert_eq!((price.price, price.time, price.sources.len()), (97_000.25, time, 2));
    assert_eq!((price.sources[1].quote_time, price.dispersion.std_dev), (time, 4.0));
    assert!((1.4..5.0).contains(&price.age_seconds), "age {}", price.age_seconds);

    let average = AveragePrice::parse_from_json(Some(json_of(cli.get("/btc/average").send().await).await))
        .unwrap_or_else(|e| panic!("/btc/average does not match its schema: {}", e.into_message()));
    assert_eq!(
        (average.from, average.to, average.time_weighted_average),
        (time - chrono::Duration::seconds(120), time, 96_998.75)
    );
    assert!((1.4..5.0).contains(&average.age_seconds), "age {}", average.age_seconds);

    let status = json_of(client(App::RestApi, None).get("/").send().await).await;
    frontend::api::rest::StatusBody::parse_from_json(Some(status.clone())).expect("`/` matches its schema");
    assert_eq!(status, serde_json::json!({"result": "OK"}));
}

#[tokio::test]
async fn no_price_yet_is_a_503_with_retry_after() {
    let cli = client(App::BitcoinApi, None);
    for path in ["/btc/USD", "/btc/average"] {
        let response = cli.get(path).send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        response.assert_header("retry-after", "5");
        let body = json_of(response).await;
        assert_eq!(body["error"], "no_price_yet");
        assert_eq!(body["status"], 503);
    }
}

#[tokio::test]
async fn a_stale_price_is_a_503_not_a_wrong_answer() {
    let old = Utc::now() - chrono::Duration::seconds(31);
    let cli = client(App::BitcoinApi, Some(state_at(old, 7, 97_000.0)));
    let response = cli.get("/btc/USD").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(response).await["error"], "stale_price");
}

#[tokio::test]
async fn a_price_is_as_old_as_its_oldest_quote() {
    // The round is fresh but every quote behind it is 31 s old (all exchanges just failed and
    // their last quotes are reused): the price is stale, and its age says how old the data is.
    let now = Utc::now();
    let mut state = state_at(now, 7, 97_000.0);
    state.latest.oldest_quote_time = Some(now - chrono::Duration::seconds(31));
    let cli = client(App::BitcoinApi, Some(state.clone()));
    let response = cli.get("/btc/USD").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(response).await["error"], "stale_price");

    state.latest.oldest_quote_time = Some(now - chrono::Duration::seconds(12));
    let body = json_of(client(App::BitcoinApi, Some(state)).get("/btc/USD").send().await).await;
    let age = body["age_seconds"].as_f64().expect("age");
    assert!((12.0..15.0).contains(&age), "age {age}");
    let oldest = body["oldest_quote_time"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    assert_eq!(oldest.map(|t| t.timestamp_millis()), Some((now - chrono::Duration::seconds(12)).timestamp_millis()));
}

#[tokio::test]
async fn the_cache_never_goes_back_to_an_older_state() {
    let cache = StateCache::default();
    let now = Utc::now();
    cache.set(state_at(now, 9, 100.0));
    cache.set(state_at(now, 8, 50.0));
    assert_eq!(cache.get(&btc_contract::Pair::seed()).expect("state").state.latest.price, 100.0);
}

#[tokio::test]
async fn a_state_from_a_stream_created_again_replaces_one_with_a_higher_sequence() {
    // The ticks stream was deleted and created again: its sequences start at 1 again.
    let cache = StateCache::default();
    let now = Utc::now();
    cache.set(state_at(now, 5_000, 100.0));
    let mut recreated = state_at(now, 3, 50.0);
    recreated.stream_created = Some(now);
    cache.set(recreated);
    assert_eq!(cache.get(&btc_contract::Pair::seed()).expect("state").state.latest.price, 50.0);
    cache.set(state_at(now, 6_000, 100.0));
    assert_eq!(
        cache.get(&btc_contract::Pair::seed()).expect("state").state.latest.price,
        50.0,
        "a state of the old stream came back"
    );
}

#[tokio::test]
async fn unknown_pairs_and_routes_are_json_404s() {
    let cli = client(App::BitcoinApi, None);
    for path in ["/btc/JPY", "/doge/USD/average", "/b/USD"] {
        let response = cli.get(path).send().await;
        response.assert_status(StatusCode::NOT_FOUND);
        response.assert_content_type("application/json; charset=utf-8");
        let body = json_of(response).await;
        assert_eq!(body["error"], "unknown_pair", "{path}");
        assert_eq!(body["pairs"], serde_json::json!(["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD"]), "{path}");
        assert!(body["message"].as_str().expect("message").contains("ETH-USD"), "{path}");
    }

    let response = cli.get("/no/such/thing").send().await;
    response.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(json_of(response).await["error"], "not_found");

    // bitcoin-api does not serve rest-api's root.
    client(App::BitcoinApi, None).get("/").send().await.assert_status(StatusCode::NOT_FOUND);
}

/// `state` as `pair`'s.
fn of_pair(pair: &str, mut state: PriceState) -> PriceState {
    state.latest.pair = pair.to_string();
    state
}

#[tokio::test]
async fn every_configured_pair_answers_at_its_own_paths_in_any_case() {
    let now = Utc::now();
    let cache = Arc::new(StateCache::default());
    cache.set(state_at(now, 7, 97_000.0));
    cache.set(of_pair("ETH-USD", state_at(now, 8, 3_000.0)));
    cache.set(of_pair("BTC-EUR", state_at(now, 9, 83_000.0)));
    let cli = TestClient::new(endpoint(App::BitcoinApi, cache, STALE_AFTER));
    for (path, pair, currency, price) in [
        ("/btc/USD", "BTC-USD", "USD", 97_000.0),
        ("/eth/USD", "ETH-USD", "USD", 3_000.0),
        ("/BTC/eur", "BTC-EUR", "EUR", 83_000.0),
    ] {
        let response = cli.get(path).send().await;
        response.assert_status_is_ok();
        let body = json_of(response).await;
        assert_eq!(
            (body["pair"].as_str(), body["currency"].as_str(), body["price"].as_f64()),
            (Some(pair), Some(currency), Some(price)),
            "{path}"
        );
    }
    for (path, average) in [("/btc/average", 96_998.5), ("/btc/USD/average", 96_998.5), ("/eth/USD/average", 2_998.5)] {
        let response = cli.get(path).send().await;
        response.assert_status_is_ok();
        assert_eq!(json_of(response).await["time_weighted_average"].as_f64(), Some(average), "{path}");
    }
    // A configured pair without a state yet is unavailable, not unknown.
    let response = cli.get("/btc/GBP").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(response).await["error"], "no_price_yet");
}

#[tokio::test]
async fn pairs_lists_every_configured_pair_with_its_paths_sources_and_freshness() {
    let now = Utc::now();
    let cache = Arc::new(StateCache::default());
    cache.set(state_at(now, 7, 97_000.0));
    cache.set(of_pair("ETH-USD", state_at(now - chrono::Duration::seconds(120), 8, 3_000.0)));
    let cli = TestClient::new(endpoint(App::BitcoinApi, cache, STALE_AFTER));
    let response = cli.get("/pairs").send().await;
    response.assert_status_is_ok();
    let body = json_of(response).await;
    let pairs = body["pairs"].as_array().expect("pairs");
    let names: Vec<&str> = pairs.iter().filter_map(|p| p["pair"].as_str()).collect();
    assert_eq!(names, ["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD"]);
    let (usd, gbp, eth) = (&pairs[0], &pairs[2], &pairs[3]);
    assert_eq!(
        (usd["price_path"].as_str(), usd["average_path"].as_str()),
        (Some("/btc/USD"), Some("/btc/USD/average"))
    );
    assert_eq!(
        (usd["fresh"].as_bool(), eth["fresh"].as_bool(), gbp["fresh"].as_bool()),
        (Some(true), Some(false), Some(false))
    );
    assert!(eth["price_age_seconds"].as_f64().is_some_and(|age| age >= 120.0));
    // Absent, not null: the schema's number is not nullable (schemathesis found the null).
    assert!(gbp.get("price_age_seconds").is_none(), "{gbp}");
    assert_eq!(usd["sources"], serde_json::json!(["kraken", "gemini"]));
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let cli = client(App::BitcoinApi, None);
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let response = cli.request(method, "/btc/USD").send().await;
        response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        response.assert_header("allow", "GET");
        assert_eq!(json_of(response).await["error"], "method_not_allowed");
    }
}

#[tokio::test]
async fn rest_api_root_answers_ok() {
    let cli = client(App::RestApi, None);
    let response = cli.get("/").send().await;
    response.assert_status_is_ok();
    response.assert_json(serde_json::json!({"result": "OK"})).await;
    cli.get("/btc/USD").send().await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn liveness_is_ok_without_nats_and_readiness_follows_what_each_app_needs() {
    for app in [App::BitcoinApi, App::RestApi] {
        let cli = client(app, Some(state_at(Utc::now(), 1, 1.0)));
        let response = cli.get("/liveness").send().await;
        response.assert_status_is_ok();
        response.assert_text("OK").await;
    }
    // bitcoin-api serves the state, so it needs NATS; rest-api's `/` needs nothing but to listen.
    let response = client(App::BitcoinApi, Some(state_at(Utc::now(), 1, 1.0))).get("/readiness").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let text = response.0.into_body().into_string().await.expect("body");
    assert!(text.contains("NATS"), "{text}");
    let response = client(App::RestApi, None).get("/readiness").send().await;
    response.assert_status_is_ok();
    response.assert_text("OK").await;
}

#[tokio::test]
async fn both_apps_fail_readiness_while_draining() {
    for app in [App::BitcoinApi, App::RestApi] {
        let cache = Arc::new(StateCache::default());
        cache.start_draining();
        let response = TestClient::new(endpoint(app, cache, STALE_AFTER)).get("/readiness").send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let text = response.0.into_body().into_string().await.expect("body");
        assert!(text.contains("shutting down"), "{app:?}: {text}");
    }
}

#[tokio::test]
async fn each_app_serves_its_spec_and_swagger_ui() {
    for (app, path) in [(App::BitcoinApi, "/btc/USD"), (App::RestApi, "/")] {
        let cli = client(app, None);
        let response = cli.get("/openapi.json").send().await;
        response.assert_status_is_ok();
        let spec = json_of(response).await;
        assert!(spec["paths"][path].is_object(), "{app:?} spec lacks {path}");
        assert!(spec["paths"]["/readiness"].is_object());
        let response = cli.get("/docs").send().await;
        response.assert_status_is_ok();
        let html = response.0.into_body().into_string().await.expect("html");
        assert!(html.contains("swagger"), "Swagger UI page");
    }
}

#[tokio::test]
async fn bitcoin_api_serves_the_live_page_and_its_assets_from_the_binary_under_a_strict_policy() {
    let cli = client(App::BitcoinApi, None);
    let mut bodies = String::new();
    for (path, media_type) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let response = cli.get(path).send().await;
        response.assert_status_is_ok();
        response.assert_header("content-type", format!("{media_type}; charset=utf-8"));
        response.assert_header("content-security-policy", frontend::dashboard::CONTENT_SECURITY_POLICY);
        response.assert_header("cache-control", "public, max-age=300");
        bodies += &response.0.into_body().into_string().await.expect("text");
    }
    // Offline: nothing is fetched from another origin.
    assert!(!bodies.contains("http://") && !bodies.contains("https://"), "the page reaches for another origin");
    assert!(bodies.contains("/dashboard/dashboard.js") && bodies.contains("/stream"), "the page streams its prices");
    for path in ["/dashboard/nope.js", "/dashboards"] {
        let response = cli.get(path).send().await;
        response.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["error"], "not_found", "{path}");
    }
    // rest-api serves no prices, so no live page.
    client(App::RestApi, None).get("/dashboard").send().await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn responses_carry_security_headers_and_their_route_s_caching() {
    let cli = client(App::BitcoinApi, Some(state_at(Utc::now(), 1, 1.0)));
    let response = cli.get("/btc/USD").send().await;
    response.assert_status_is_ok();
    response.assert_header("x-content-type-options", "nosniff");
    response.assert_header("x-frame-options", "DENY");
    // Each route's own policy (see `http_caching.rs`); errors and probes are `no-store`.
    response.assert_header("cache-control", "public, max-age=1");
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_json_errors() {
    let cli = client(App::BitcoinApi, None);
    let response = cli.get("/btc/USD").header("x-padding", "a".repeat(64 * 1024)).send().await;
    response.assert_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(json_of(response).await["error"], "headers_too_large");
    let response = cli.get("/btc/USD").header("content-length", "100000").body(vec![b'x'; 100_000]).send().await;
    response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(response).await["error"], "body_too_large");
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_configured_origins() {
    let cli = client(App::BitcoinApi, None);
    let response = cli.get("/btc/USD").header("origin", "https://docs.example.com").send().await;
    assert!(response.0.headers().get("access-control-allow-origin").is_none());

    let cache = Arc::new(StateCache::default());
    let limits = frontend::hardening::Limits {
        cors_origins: vec!["https://docs.example.com".to_string()],
        ..Default::default()
    };
    let cli = TestClient::new(frontend::server::endpoint_with(App::BitcoinApi, cache, STALE_AFTER, limits));
    let response = cli.get("/btc/USD").header("origin", "https://docs.example.com").send().await;
    response.assert_header("access-control-allow-origin", "https://docs.example.com");
    let response = cli.get("/btc/USD").header("origin", "https://evil.example.com").send().await;
    assert!(response.0.headers().get("access-control-allow-origin").is_none());
    assert_eq!(response.0.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_port_and_errors_repeat_little_of_the_request() {
    for app in [App::BitcoinApi, App::RestApi] {
        let response = client(app, None).get("/metrics").send().await;
        response.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["error"], "not_found", "{app:?}");
    }
    let cli = client(App::BitcoinApi, None);
    for path in [format!("/{}", "a".repeat(50_000)), format!("/btc/{}", "B".repeat(50_000))] {
        let response = cli.get(&path).send().await;
        response.assert_status(StatusCode::NOT_FOUND);
        let body = json_of(response).await;
        assert!(body.to_string().len() < 400, "a 404 repeats {} bytes of its path", body.to_string().len());
    }
}
