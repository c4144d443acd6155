//! The HTTP API, described with poem-openapi: the types and operations here are the single source
//! of `openapi.yaml`.

pub mod bitcoin;
pub mod bodies;
pub mod caching;
pub mod encoded;
pub mod errors;
pub mod freshness;
pub mod history;
pub mod history_page;
pub mod history_ticks;
pub mod negotiation;
pub mod probes;
pub mod responses;
pub mod rest;
pub mod stream;

use poem_openapi::{LicenseObject, OpenApi, OpenApiService, ServerObject};

/// Title of every spec this crate produces.
pub const TITLE: &str = "BTC price API";

/// The public API as seen through the ingress (the price paths to bitcoin-api, `/` to rest-api): the
/// content of `openapi.yaml`. Each app serves its own part at `/openapi.json`.
pub fn public_spec_yaml() -> String {
    let cache = std::sync::Arc::new(crate::cache::StateCache::default());
    let stale_after = std::time::Duration::from_secs(30);
    let apis = (
        bitcoin::BitcoinApi::new(cache.clone(), stale_after),
        history::HistoryApi::new(cache.clone()),
        stream::StreamApi::new(cache.clone()),
        rest::RestApi,
        probes::ProbesApi::new(cache, true),
    );
    service(apis, TITLE).spec_yaml()
}

/// The spec service of `apis`: every app's and `openapi.yaml` carry the same description,
/// license and server.
pub fn service<T: OpenApi>(apis: T, title: impl Into<String>) -> OpenApiService<T, ()> {
    OpenApiService::new(apis, title, env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .license(LicenseObject::new("MIT").url("https://spdx.org/licenses/MIT.html"))
        // Relative: the host that served this document (each app serves its own at /openapi.json).
        .server(ServerObject::new("/").description("The host that serves this document"))
}

pub const DESCRIPTION: &str = "Current price (median of several exchanges) and rolling 10-minute average of every \
configured pair (`GET /pairs` lists them; the seed's `/btc/USD` and `/btc/average` are BTC-USD's), served from \
the state the aggregator keeps in NATS.\n\n\
**Representations.** JSON by default; the price and average routes answer the bare number (`97012.35`, as the \
replaced app did) to a request whose `Accept` prefers `text/plain` (q-values honoured). Errors are always JSON \
objects `{\"error\", \"message\", \"status\"}`; every 503 carries `Retry-After`.\n\n\
**Caching.** Price and average answers carry a weak `ETag` (the state's stream position and the \
representation), `Vary: accept`, and `Cache-Control: public, max-age=1`; a request whose `If-None-Match` names \
the current tag gets `304 Not Modified` with no body. `/pairs` is `public, max-age=1`, the spec and Swagger UI \
`public, max-age=300`; errors, probes and `/` are `no-store`.";
