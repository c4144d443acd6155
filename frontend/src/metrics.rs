//! The frontends' metrics: RED per route (recorded by [`crate::frontline`]), price and freshness
//! gauges, build info.

use std::time::Duration;

use btc_common::metrics::{self, Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, NatsGauge, Registry};
use poem::http::{Method, StatusCode};

use crate::cache::StateCache;

pub struct FrontendMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// The price and NATS gauges, for the app that serves the state (rest-api has neither).
    state: Option<StateGauges>,
    /// Route labels: the routes this app serves, then `/docs` and `unmatched` (bounded values).
    routes: Vec<&'static str>,
    /// The series of a successful GET per route, resolved once: looking a labelled series up
    /// hashes its labels under a lock, on every request.
    get_ok: Vec<(IntCounter, Histogram)>,
}

/// A route label, as an index into the app's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(usize);

impl FrontendMetrics {
    /// The metrics of the app named `app` (`btc_build_info`'s component) serving `app_routes`;
    /// `serves_state` adds the price and NATS gauges.
    pub fn new(app: &'static str, app_routes: &'static [&'static str], serves_state: bool) -> Self {
        let registry = Registry::new();
        let r = &registry;
        metrics::build_info(r, app);
        let routes: Vec<&'static str> = app_routes.iter().copied().chain([DOCS, UNMATCHED]).collect();
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

    /// The route label of `path`: a known route, `/docs` for Swagger UI assets, or `unmatched`.
    pub fn route(&self, path: &str) -> RouteLabel {
        let known = self.routes.len() - 2;
        if let Some(index) = self.routes[..known].iter().position(|route| *route == path) {
            return RouteLabel(index);
        }
        RouteLabel(if path == DOCS || path.starts_with("/docs/") { known } else { known + 1 })
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
        let route = self.routes[route.0];
        self.requests.with_label_values(&[method.as_str(), route, status.as_str()]).inc();
        self.duration.with_label_values(&[method.as_str(), route]).observe(seconds);
    }

    /// Prometheus text for `/metrics`, with the point-in-time gauges refreshed from `cache`.
    pub fn render(&self, cache: &StateCache) -> String {
        if let Some(gauges) = &self.state {
            gauges.refresh(cache);
        }
        metrics::encode(&self.registry)
    }
}

/// What a frontend serving the state reports about it.
struct StateGauges {
    price: Gauge,
    average: Gauge,
    price_age: Gauge,
    nats: NatsGauge,
}

impl StateGauges {
    fn new(r: &Registry) -> Self {
        Self {
            price: metrics::gauge(r, "btc_price_usd", "The current BTC price served, USD (at scrape)."),
            average: metrics::gauge(
                r,
                "btc_average_usd",
                "The time-weighted 10-minute average served, USD (at scrape).",
            ),
            price_age: metrics::gauge(
                r,
                "btc_price_age_seconds",
                "Seconds since the oldest quote behind the newest tick this frontend holds (at scrape); +Inf before the first.",
            ),
            nats: NatsGauge::new(r),
        }
    }

    fn refresh(&self, cache: &StateCache) {
        match cache.get() {
            Some(cached) => {
                let state = &cached.state;
                self.price.set(state.latest.price);
                self.average.set(state.average.time_weighted);
                self.price_age.set(metrics::age_seconds(state.latest.data_time()));
            }
            // No price at all is the stalest of all: an age alert fires instead of seeing 0.
            None => self.price_age.set(f64::INFINITY),
        }
        if let Some(client) = cache.nats_client() {
            self.nats.observe(client);
        }
    }
}

const DOCS: &str = "/docs";
const UNMATCHED: &str = "unmatched";
