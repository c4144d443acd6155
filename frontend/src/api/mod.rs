//! The HTTP API, described with poem-openapi: the types and operations here are the single source
//! of `openapi.yaml`.

pub mod bitcoin;
pub mod bodies;
pub mod encoded;
pub mod errors;
pub mod freshness;
pub mod history;
pub mod history_page;
pub mod history_ticks;
pub mod probes;
pub mod rest;

use poem_openapi::OpenApiService;

/// Title of every spec this crate produces.
pub const TITLE: &str = "BTC price API";

/// The public API as seen through the ingress (the price paths to bitcoin-api, `/` to rest-api): the
/// content of `openapi.yaml`. Each app serves its own part at `/openapi.json`.
pub fn public_spec_yaml() -> String {
    let cache = std::sync::Arc::new(crate::cache::StateCache::default());
    let stale_after = std::time::Duration::from_secs(30);
    OpenApiService::new(
        (
            bitcoin::BitcoinApi::new(cache.clone(), stale_after),
            history::HistoryApi::new(cache.clone()),
            rest::RestApi,
            probes::ProbesApi::new(cache, true),
        ),
        TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .spec_yaml()
}

pub const DESCRIPTION: &str = "Current price (median of several exchanges) and rolling 10-minute average of every \
configured pair (`GET /pairs` lists them; the seed's `/btc/USD` and `/btc/average` are BTC-USD's), served from \
the state the aggregator keeps in NATS. Errors are JSON objects `{\"error\", \"message\", \"status\"}`; 503 \
answers carry `Retry-After`.";
