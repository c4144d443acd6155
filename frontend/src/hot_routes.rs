//! The routes clients poll most, answered straight from hyper's request: a pair's price and
//! average (`/btc/USD`, `/btc/average`, `/{asset}/{currency}`, `/{asset}/{currency}/average`) and
//! rest-api's `/`.
//!
//! Through Poem a request is rebuilt as a `poem::Request`, routed through poem-openapi's tree and
//! passed by value through boxed futures: `make bench` measured that at a third of the CPU of a
//! price answer (`bench/README.md`, issue 17). Here the same answer is made from the request's head
//! by the very functions the operations call ([`Prices`], [`crate::api::rest::status`]), and gets
//! what [`crate::frontline`] gives every answer: the security headers, the request metrics, the
//! server span and a panic turned into the JSON 500. The request timeout has nothing to stop: the
//! answer is made from memory without waiting.
//!
//! Only a plain request takes this path: a GET without a body, within the header limit, of a path
//! whose segments are letters and digits (nothing poem would decode), with no CORS to answer.
//! Anything else, and every other route, goes through Poem, which answers it as before; a test
//! checks both paths give the same answer to the same request (`tests/hot_routes.rs`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderMap, Method, header};
use poem::{IntoResponse, Response};

use crate::api::bitcoin::Prices;
use crate::app::App;
use crate::frontline::seal;
use crate::hardening::{Limits, over_limits, panic_response};
use crate::metrics::FrontendMetrics;
use crate::routes;
use crate::server_span::{RequestHead, ServerSpans};

/// The hot routes of one app, sharing the app's answers, metrics and spans.
pub struct HotRoutes {
    app: App,
    /// bitcoin-api's price and average answers (`None` for rest-api).
    prices: Option<Arc<Prices>>,
    limits: Limits,
    metrics: Arc<FrontendMetrics>,
    spans: Option<Arc<ServerSpans>>,
}

/// A hot route, with the pair it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HotRoute<'a> {
    /// rest-api's `/`.
    Status,
    Price {
        asset: &'a str,
        currency: &'a str,
    },
    Average {
        asset: &'a str,
        currency: &'a str,
    },
}

impl HotRoutes {
    pub fn new(
        app: App,
        prices: Option<Arc<Prices>>,
        limits: Limits,
        metrics: Arc<FrontendMetrics>,
        spans: Option<Arc<ServerSpans>>,
    ) -> Self {
        Self { app, prices, limits, metrics, spans }
    }

    /// The answer to `request` if it is a plain GET of a hot route; `None` sends it through Poem.
    pub fn answer(&self, request: &RequestHead<'_>) -> Option<Response> {
        if request.method != Method::GET || !self.is_plain(request.headers) {
            return None;
        }
        let path = request.uri.path();
        let route = self.route_of(path)?;
        let started = Instant::now();
        let label = self.metrics.route(path);
        let span = self.spans.as_ref().map(|spans| spans.start(request, self.metrics.route_name(label)));
        let answered = std::panic::catch_unwind(AssertUnwindSafe(|| self.respond(route, request.headers)));
        let mut response = answered.unwrap_or_else(panic_response);
        if let Some(context) = &span {
            ServerSpans::finish(context, response.status());
        }
        seal(&mut response, &self.metrics, request.method, label, started);
        Some(response)
    }

    /// True for headers that need nothing but the route's own answer: no body, within the limits,
    /// and no `Origin` where CORS is on.
    fn is_plain(&self, headers: &HeaderMap) -> bool {
        let body = headers.contains_key(header::CONTENT_LENGTH) || headers.contains_key(header::TRANSFER_ENCODING);
        let cors = !self.limits.cors_origins.is_empty() && headers.contains_key(header::ORIGIN);
        !body && !cors && over_limits(headers, &self.limits).is_none()
    }

    /// The hot route `path` is, as the router would match it: exact paths before templates.
    fn route_of<'a>(&self, path: &'a str) -> Option<HotRoute<'a>> {
        match self.app {
            App::RestApi => (path == "/").then_some(HotRoute::Status),
            App::BitcoinApi if self.prices.is_none() || routes::is_beside_api(self.app, path) => None,
            App::BitcoinApi => match path {
                "/btc/USD" => Some(HotRoute::Price { asset: "BTC", currency: "USD" }),
                "/btc/average" => Some(HotRoute::Average { asset: "BTC", currency: "USD" }),
                _ => pair_route(path),
            },
        }
    }

    fn respond(&self, route: HotRoute<'_>, headers: &HeaderMap) -> Response {
        match (route, &self.prices) {
            (HotRoute::Price { asset, currency }, Some(prices)) => prices.price(headers, asset, currency),
            (HotRoute::Average { asset, currency }, Some(prices)) => prices.average(headers, asset, currency),
            // `route_of` gives a pair's route only with the prices.
            (HotRoute::Status, _) | (_, None) => crate::api::rest::status().into_response(),
        }
    }
}

/// `/{asset}/{currency}` or `/{asset}/{currency}/average` with plain segments.
fn pair_route(path: &str) -> Option<HotRoute<'_>> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let (asset, currency) = (segments.next()?, segments.next()?);
    let plain = |segment: &str| !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric());
    if !plain(asset) || !plain(currency) {
        return None;
    }
    match (segments.next(), segments.next()) {
        (None, _) => Some(HotRoute::Price { asset, currency }),
        (Some("average"), None) => Some(HotRoute::Average { asset, currency }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_pair_paths_are_hot() {
        let price = |asset, currency| Some(HotRoute::Price { asset, currency });
        let average = |asset, currency| Some(HotRoute::Average { asset, currency });
        assert_eq!(pair_route("/eth/USD"), price("eth", "USD"));
        assert_eq!(pair_route("/BTC/eur/average"), average("BTC", "eur"));
        for cold in [
            "/",
            "/pairs",
            "/btc/USD/",
            "/btc/USD/candles",
            "/btc/USD/stream",
            "/btc/USD/average/x",
            "/b%74c/USD",
            "/btc//USD",
            "//btc/USD",
            "/btc/US-D",
            "/docs/index.css",
            "/btc/USD/average/",
        ] {
            assert_eq!(pair_route(cold), None, "{cold}");
        }
    }
}
