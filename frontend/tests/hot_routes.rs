//! The hot routes (`frontend::hot_routes`) answer a plain GET of a price, an average or rest-api's
//! `/` before Poem sees it: for any request they take, their answer must be the one Poem's router
//! and operations give (status, headers, body but for the per-request `age_seconds`), and they
//! must leave every other request to Poem.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use frontend::App;
use frontend::cache::StateCache;
use frontend::hardening::Limits;
use frontend::server::{PublicService, service};
use frontend::server_span::RequestHead;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::{Endpoint, Request, Response};
use proptest::prelude::*;
use serde_json::Value;
use testkit::prices::{state, tick};

const STALE_AFTER: Duration = Duration::from_secs(30);

/// BTC-USD fresh, ETH-USD stale, the other default pairs without a state yet.
fn bitcoin_api() -> PublicService {
    bitcoin_api_with(Limits::default())
}

fn bitcoin_api_with(limits: Limits) -> PublicService {
    let cache = Arc::new(StateCache::default());
    cache.set(state(tick("BTC-USD", 97_000.5, Utc::now()), 7));
    cache.set(state(tick("ETH-USD", 3_000.25, Utc::now() - chrono::Duration::hours(1)), 8));
    service(App::BitcoinApi, cache, STALE_AFTER, limits)
}

/// bitcoin-api allowing one origin: a request without `Origin` is still the hot path's.
fn bitcoin_api_with_cors() -> PublicService {
    bitcoin_api_with(Limits { cors_origins: vec!["https://example.com".to_string()], ..Limits::default() })
}

fn rest_api() -> PublicService {
    service(App::RestApi, Arc::new(StateCache::default()), STALE_AFTER, Limits::default())
}

/// A request as a client could send it.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
}

impl Case {
    fn request(&self) -> Request {
        let mut builder = Request::builder()
            .method(Method::from_bytes(self.method.as_bytes()).expect("a method token"))
            .uri(self.path.parse().expect("a URI"));
        for (name, value) in &self.headers {
            builder = builder.header(*name, *value);
        }
        builder.finish()
    }
}

const SEGMENTS: &[&str] = &[
    "btc",
    "BTC",
    "eth",
    "usd",
    "USD",
    "EUR",
    "GBP",
    "average",
    "candles",
    "pairs",
    "docs",
    "dashboard",
    "openapi.json",
    "readiness",
    "x",
    "",
    "b%74c",
    "%2F",
];

const HEADERS: &[(&str, &str)] = &[
    ("accept", "text/plain"),
    ("accept", "application/json"),
    ("accept", "text/plain;q=0.5, application/json"),
    ("accept", "*/*"),
    ("if-none-match", "W/\"0-7-json\""),
    ("if-none-match", "W/\"0-7-text\""),
    ("if-none-match", "*"),
    ("if-none-match", "\"other\""),
    ("content-length", "0"),
    ("origin", "https://example.com"),
    ("x-forwarded-for", "203.0.113.9"),
];

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec!["GET", "GET", "GET", "HEAD", "POST", "DELETE", "BREW"]);
    let path = (
        prop::collection::vec(prop::sample::select(SEGMENTS), 0..4),
        any::<bool>(),
        prop::option::of("[a-z]{1,3}=[0-9]{1,3}"),
    )
        .prop_map(|(segments, trailing_slash, query)| {
            let mut path = format!("/{}", segments.join("/"));
            if trailing_slash && !path.ends_with('/') {
                path.push('/');
            }
            if let Some(query) = query {
                path = format!("{path}?{query}");
            }
            path
        });
    let headers = prop::collection::vec(prop::sample::select(HEADERS), 0..3);
    (method, path, headers).prop_map(|(method, path, headers)| Case { method, path, headers })
}

/// What two answers must share: status, every header, and the body (JSON without `age_seconds`).
async fn comparable(response: Response) -> (StatusCode, HeaderMap, Result<Value, Vec<u8>>) {
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().into_vec().await.expect("a body");
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut object)) => {
            object.remove("age_seconds");
            Ok(Value::Object(object))
        }
        Ok(other) => Ok(other),
        Err(_) => Err(bytes),
    };
    (status, headers, body)
}

/// The hot path's answer to `case` beside Poem's, or `None` if the hot path left it to Poem.
async fn both_answers(service: &PublicService, case: &Case) -> Option<(Response, Response)> {
    let hot = service.hot.answer(&RequestHead::of(&case.request()))?;
    let poem = service.endpoint.get_response(case.request()).await;
    Some((hot, poem))
}

/// Both apps (bitcoin-api also with CORS on), built once for every case (building a poem-openapi
/// service is most of a case's time).
static SERVICES: LazyLock<[PublicService; 3]> = LazyLock::new(|| [bitcoin_api(), bitcoin_api_with_cors(), rest_api()]);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_hot_answer_is_the_answer_poem_gives(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            for service in SERVICES.iter() {
                if let Some((hot, poem)) = both_answers(service, &case).await {
                    prop_assert_eq!(comparable(hot).await, comparable(poem).await, "{:?}", case);
                }
            }
            Ok(())
        })?;
    }
}

/// The property above cannot pass by leaving everything to Poem: the hot path takes the plain
/// requests of its routes, in every representation and validator, and leaves the rest.
#[tokio::test]
async fn the_hot_path_takes_plain_gets_of_its_routes_only() {
    let get = |path: &str, headers: &[(&'static str, &'static str)]| Case {
        method: "GET",
        path: path.to_string(),
        headers: headers.to_vec(),
    };
    let (bitcoin, rest) = (bitcoin_api(), rest_api());
    for (case, status) in [
        (get("/btc/USD", &[]), StatusCode::OK),
        (get("/btc/average", &[("accept", "text/plain")]), StatusCode::OK),
        (get("/BTC/usd/average?x=1", &[]), StatusCode::OK),
        (get("/btc/USD", &[("if-none-match", "W/\"0-7-json\"")]), StatusCode::NOT_MODIFIED),
        (get("/eth/USD", &[]), StatusCode::SERVICE_UNAVAILABLE),
        (get("/btc/EUR", &[]), StatusCode::SERVICE_UNAVAILABLE),
        (get("/doge/USD", &[]), StatusCode::NOT_FOUND),
    ] {
        let (hot, poem) = both_answers(&bitcoin, &case).await.unwrap_or_else(|| panic!("not hot: {case:?}"));
        assert_eq!((hot.status(), poem.status()), (status, status), "{case:?}");
    }
    let (hot, _) = both_answers(&rest, &get("/", &[])).await.expect("rest-api's / is hot");
    assert_eq!(hot.into_body().into_string().await.expect("body"), r#"{"result":"OK"}"#);

    for (service, case) in [
        (&bitcoin, Case { method: "HEAD", ..get("/btc/USD", &[]) }),
        (&bitcoin, Case { method: "POST", ..get("/btc/USD", &[]) }),
        (&bitcoin, get("/btc/USD", &[("content-length", "0")])),
        (&bitcoin, get("/b%74c/USD", &[])),
        (&bitcoin, get("/btc/USD/candles", &[])),
        (&bitcoin, get("/pairs", &[])),
        (&bitcoin, get("/docs/x", &[])),
        (&rest, get("/btc/USD", &[])),
        (&rest, get("/readiness", &[])),
    ] {
        assert!(both_answers(service, &case).await.is_none(), "hot: {case:?}");
    }
    // A request over the header limit is Poem's to refuse.
    let strict = Limits { max_header_bytes: 64, ..Limits::default() };
    let cache = Arc::new(StateCache::default());
    let strict = service(App::BitcoinApi, cache, STALE_AFTER, strict);
    let long = get("/btc/USD", &[("x-long", "a header value longer than the sixty-four bytes this service allows")]);
    assert!(both_answers(&strict, &long).await.is_none(), "over the header limit, yet hot");
    let refused = strict.endpoint.get_response(long.request()).await;
    assert_eq!(refused.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // With CORS on, a request with `Origin` is Poem's (its CORS headers), one without is not.
    let cors = bitcoin_api_with_cors();
    let with_origin = get("/btc/USD", &[("origin", "https://example.com")]);
    assert!(both_answers(&cors, &with_origin).await.is_none(), "a CORS request taken by the hot path");
    assert!(both_answers(&cors, &get("/btc/USD", &[])).await.is_some(), "a plain request left to Poem");
    // Left to Poem, a percent-encoded path still names the pair.
    let poem = bitcoin.endpoint.get_response(get("/b%74c/USD", &[]).request()).await;
    assert_eq!(poem.status(), StatusCode::OK);
}
