//! The frontends' metrics (RED per route, price and freshness gauges) and the middleware that
//! records every request.

use std::sync::Arc;
use std::time::Instant;

use btc_common::metrics::{self, Gauge, HistogramVec, IntCounterVec, NatsGauge, Registry};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::cache::StateCache;

pub struct FrontendMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    price: Gauge,
    average: Gauge,
    price_age: Gauge,
    nats: NatsGauge,
    /// Routes this app serves; anything else is counted as `unmatched` (bounded label values).
    routes: &'static [&'static str],
}

impl FrontendMetrics {
    pub fn new(routes: &'static [&'static str]) -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
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
            price: metrics::gauge(r, "btc_price_usd", "The current BTC price served, USD (at scrape)."),
            average: metrics::gauge(
                r,
                "btc_average_usd",
                "The time-weighted 10-minute average served, USD (at scrape).",
            ),
            price_age: metrics::gauge(
                r,
                "btc_price_age_seconds",
                "Seconds since the time of the newest tick this frontend holds (at scrape); +Inf before the first.",
            ),
            nats: NatsGauge::new(r),
            routes,
            registry,
        }
    }

    /// The route label of `path`: a known route, `/docs` for Swagger UI assets, or `unmatched`.
    fn route(&self, path: &str) -> &'static str {
        if let Some(route) = self.routes.iter().find(|route| **route == path) {
            return route;
        }
        if path == "/docs" || path.starts_with("/docs/") { "/docs" } else { "unmatched" }
    }

    /// Prometheus text for `/metrics`, with the point-in-time gauges refreshed from `cache`.
    pub fn render(&self, cache: &StateCache) -> String {
        match cache.get() {
            Some(state) => {
                self.price.set(state.latest.price);
                self.average.set(state.average.time_weighted);
                self.price_age.set(metrics::age_seconds(state.latest.time));
            }
            // No price at all is the stalest of all: an age alert fires instead of seeing 0.
            None => self.price_age.set(f64::INFINITY),
        }
        if let Some(client) = cache.nats_client() {
            self.nats.observe(client);
        }
        metrics::encode(&self.registry)
    }
}

/// Middleware: counts and times every request by method, route and status.
pub async fn record<E: Endpoint>(
    endpoint: E,
    request: Request,
    metrics: Arc<FrontendMetrics>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = metrics.route(request.uri().path());
    if route != "unmatched" {
        // The semantic-convention route on the server span that poem's tracing middleware opened.
        use opentelemetry::trace::TraceContextExt;
        opentelemetry::Context::current().span().set_attribute(opentelemetry::KeyValue::new("http.route", route));
    }
    let response = endpoint.call(request).await.map(IntoResponse::into_response);
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.status(),
    };
    metrics.requests.with_label_values(&[method.as_str(), route, status.as_str()]).inc();
    metrics.duration.with_label_values(&[method.as_str(), route]).observe(started.elapsed().as_secs_f64());
    response
}
