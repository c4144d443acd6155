//! The frontends' metrics: RED per route (recorded by [`crate::frontline`]), price and freshness
//! gauges, build info.

use std::time::Duration;

use btc_runtime::metrics::{
    self, Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, NatsGauge, Registry,
};
use poem::http::{Method, StatusCode};

use crate::api::freshness;
use crate::cache::StateCache;
use crate::routes;

pub struct FrontendMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// The price and NATS gauges, for the app that serves the state (rest-api has neither).
    state: Option<StateGauges>,
    /// Route labels: the routes this app serves, then its pages (`/docs`, ...) and `unmatched`
    /// (bounded values).
    routes: Vec<&'static str>,
    /// How many of `routes` are the API's and the spec's (matched exactly or as templates).
    api_routes: usize,
    /// The series of a successful GET per route, resolved once: looking a labelled series up
    /// hashes its labels under a lock, on every request.
    get_ok: Vec<(IntCounter, Histogram)>,
}

/// A route label, as an index into the app's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(usize);

impl FrontendMetrics {
    /// The metrics of the app named `app` (`btc_build_info`'s component) serving `app_routes`
    /// and `pages` (each a page and its assets, one label); `serves_state` adds the price and
    /// NATS gauges.
    pub fn new(
        app: &'static str,
        app_routes: &'static [&'static str],
        pages: &'static [&'static str],
        serves_state: bool,
    ) -> Self {
        let registry = Registry::new();
        let r = &registry;
        metrics::build_info(r, app);
        let routes: Vec<&'static str> = app_routes.iter().chain(pages).copied().chain([UNMATCHED]).collect();
        let mut metrics = Self {
            requests: metrics::counter_vec(
                r,
                "btc_http_requests_total",
                "HTTP requests served, by method, route and status code.",
                &["method", "route", "status"],
            ),
            duration: metrics::histogram_vec(
                r,
                "btc_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route.",
                &["method", "route"],
                metrics::SERVER_LATENCY_BUCKETS,
            ),
            state: serves_state.then(|| StateGauges::new(r)),
            get_ok: Vec::new(),
            routes,
            api_routes: app_routes.len(),
            registry,
        };
        metrics.get_ok = metrics
            .routes
            .iter()
            .map(|route| {
                (
                    metrics.requests.with_label_values(&["GET", route, "200"]),
                    metrics.duration.with_label_values(&["GET", route]),
                )
            })
            .collect();
        metrics
    }

    /// The route label of `path`: a known route, a page (`/docs` for Swagger UI and its assets),
    /// or `unmatched` (never the path itself, for the reason [`method_label`] gives).
    pub fn route(&self, path: &str) -> RouteLabel {
        let api = &self.routes[..self.api_routes];
        let pages = &self.routes[self.api_routes..self.routes.len() - 1];
        // Exact paths first: `/btc/USD` is its own route, not an instance of `/{asset}/{currency}`;
        // then the pages: `/docs/index.css` is Swagger UI's, not a pair's.
        let exact = api.iter().position(|route| *route == path);
        let page = || pages.iter().position(|page| routes::is_under(page, path)).map(|index| self.api_routes + index);
        let template = || api.iter().position(|route| routes::matches(route, path));
        RouteLabel(exact.or_else(page).or_else(template).unwrap_or(self.routes.len() - 1))
    }

    /// The label value of `route`, or `None` for `unmatched`.
    pub fn route_name(&self, route: RouteLabel) -> Option<&'static str> {
        (route.0 + 1 < self.routes.len()).then(|| self.routes[route.0])
    }

    /// Counts and times one answered request.
    pub fn observe(&self, method: &Method, route: RouteLabel, status: StatusCode, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if *method == Method::GET && status == StatusCode::OK {
            let (count, duration) = &self.get_ok[route.0];
            count.inc();
            duration.observe(seconds);
            return;
        }
        let (method, route) = (method_label(method), self.routes[route.0]);
        self.requests.with_label_values(&[method, route, status.as_str()]).inc();
        self.duration.with_label_values(&[method, route]).observe(seconds);
    }

    /// Prometheus text for `/metrics`, with the point-in-time gauges refreshed from `cache`.
    pub fn render(&self, cache: &StateCache) -> String {
        if let Some(gauges) = &self.state {
            gauges.refresh(cache);
        }
        metrics::encode(&self.registry)
    }
}

/// The `method` label of a request: one of the nine methods of RFC 9110 and RFC 5789, or `other`.
/// Any token is a valid method, and every label value is a series kept for the life of the
/// process: a value taken from the request would let anyone grow the server's memory at will.
pub fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => OTHER_METHOD,
    }
}

/// The `method` label of every method outside the standard nine.
pub const OTHER_METHOD: &str = "other";

/// What a frontend serving the state reports about it, per configured pair (the `pair` label
/// takes only those values: the cache holds no other pair).
struct StateGauges {
    price: GaugeVec,
    average: GaugeVec,
    price_age: GaugeVec,
    streams_open: Gauge,
    streams_limit: Gauge,
    nats: NatsGauge,
}

impl StateGauges {
    fn new(r: &Registry) -> Self {
        Self {
            price: metrics::gauge_vec(
                r,
                "btc_price",
                "The current price served, in the pair's currency (at scrape).",
                &["pair"],
            ),
            average: metrics::gauge_vec(
                r,
                "btc_average",
                "The time-weighted 10-minute average served, in the pair's currency (at scrape).",
                &["pair"],
            ),
            price_age: metrics::gauge_vec(
                r,
                "btc_price_age_seconds",
                "Seconds since the oldest quote behind the newest tick this frontend holds (at scrape); +Inf before the first.",
                &["pair"],
            ),
            streams_open: metrics::gauge(r, "btc_frontend_streams_open", "Event streams open now (at scrape)."),
            streams_limit: metrics::gauge(
                r,
                "btc_frontend_streams_limit",
                "Event streams this process allows at once (STREAM_LIMIT); beyond it a stream is answered 503.",
            ),
            nats: NatsGauge::new(r),
        }
    }

    fn refresh(&self, cache: &StateCache) {
        for (index, pair) in cache.pairs().iter().enumerate() {
            let label = [pair.as_str()];
            match cache.get_at(index) {
                Some(cached) => {
                    let state = &cached.state;
                    self.price.with_label_values(&label).set(state.latest.price);
                    self.average.with_label_values(&label).set(state.average.time_weighted);
                    self.price_age.with_label_values(&label).set(freshness::price_age_seconds(state));
                }
                // No price at all is the stalest of all: an age alert fires instead of seeing 0.
                None => self.price_age.with_label_values(&label).set(f64::INFINITY),
            }
        }
        let feeds = cache.feeds();
        self.streams_open.set(feeds.open_streams() as f64);
        self.streams_limit.set(feeds.limit() as f64);
        if let Some(client) = cache.nats_client() {
            self.nats.observe(client);
        }
    }
}

const UNMATCHED: &str = "unmatched";

#[cfg(test)]
mod tests {
    use super::*;

    fn series(metrics: &FrontendMetrics) -> usize {
        metrics.render(&StateCache::default()).lines().filter(|l| l.starts_with("btc_http_")).count()
    }

    #[test]
    fn a_page_and_its_assets_share_the_page_s_label() {
        let metrics = FrontendMetrics::new("test", &["/{asset}/{currency}"], &[routes::DOCS, routes::DASHBOARD], false);
        let label = |path| metrics.route_name(metrics.route(path));
        assert_eq!(label("/dashboard"), Some("/dashboard"));
        assert_eq!(label("/dashboard/dashboard.js"), Some("/dashboard"));
        assert_eq!(label("/docs/index.css"), Some("/docs"));
        assert_eq!(label("/btc/EUR"), Some("/{asset}/{currency}"));
        assert_eq!(label("/dashboards"), None, "not under the page");
    }

    #[test]
    fn made_up_methods_and_paths_share_one_label_each() {
        let metrics = FrontendMetrics::new("test", &["/btc/USD"], &[routes::DOCS], false);
        let observe = |method: &str, path: &str| {
            let method = Method::from_bytes(method.as_bytes()).expect("a method token");
            metrics.observe(&method, metrics.route(path), StatusCode::NOT_FOUND, Duration::from_millis(1));
        };
        observe("M0", "/p0");
        let one_made_up = series(&metrics);
        for i in 1..1000 {
            observe(&format!("M{i}"), &format!("/p{i}"));
        }
        assert_eq!(series(&metrics), one_made_up, "a made-up method or path added series");
        let text = metrics.render(&StateCache::default());
        assert!(
            text.contains(r#"btc_http_requests_total{method="other",route="unmatched",status="404"} 1000"#),
            "{text}"
        );
        // The standard methods keep their names; lower case is another (made-up) method.
        for (method, label) in [("GET", "GET"), ("PATCH", "PATCH"), ("get", "other"), ("BREW", "other")] {
            assert_eq!(method_label(&Method::from_bytes(method.as_bytes()).expect("token")), label);
        }
    }
}
