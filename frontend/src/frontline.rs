//! The one layer every request goes through, outside the router: the header and body limits, the
//! request timeout, panics caught as the JSON 500, JSON errors, security headers, the request
//! metrics and (when tracing is on) the server span.
//!
//! One layer rather than a chain of poem middlewares: each middleware boxes a future and moves the
//! request on every call, which `make bench` showed costing more than the API's own work.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use opentelemetry::trace::FutureExt as _;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::bitcoin::RETRY_AFTER_SECONDS;
use crate::api::errors::{ErrorBody, error_response};
use crate::hardening::{Limits, add_security_headers, over_limits, panic_response};
use crate::metrics::{FrontendMetrics, RouteLabel};
use crate::server_span::{RequestHead, ServerSpans};

pub struct Frontline<E> {
    inner: E,
    limits: Limits,
    metrics: Arc<FrontendMetrics>,
    /// The server span of each request, when tracing is on.
    spans: Option<Arc<ServerSpans>>,
}

impl<E> Frontline<E> {
    pub fn new(inner: E, limits: Limits, metrics: Arc<FrontendMetrics>, spans: Option<Arc<ServerSpans>>) -> Self {
        Self { inner, limits, metrics, spans }
    }
}

impl<E: Endpoint> Frontline<E> {
    /// The answer to `request`: the app's, or the JSON error of a limit, a timeout or a panic.
    async fn answer(&self, request: Request) -> Response {
        if let Some(rejection) = over_limits(request.headers(), &self.limits) {
            return rejection.into_response();
        }
        let uri = request.uri().clone();
        let handled = AssertUnwindSafe(self.inner.call(request)).catch_unwind();
        match tokio::time::timeout(self.limits.request_timeout, handled).await {
            Ok(Ok(Ok(response))) => response.into_response(),
            Ok(Ok(Err(error))) => error_response(&error, uri.path()),
            Ok(Err(panic)) => panic_response(panic),
            Err(_) => {
                let mut response =
                    ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
                        .into_response();
                // Every documented 503 carries `Retry-After`.
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                response
            }
        }
    }
}

impl<E: Endpoint> Endpoint for Frontline<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let method = request.method().clone();
        let route = self.metrics.route(request.uri().path());
        let mut response = match &self.spans {
            None => self.answer(request).await,
            Some(spans) => {
                let context = spans.start(&RequestHead::of(&request), self.metrics.route_name(route));
                let response = self.answer(request).with_context(context.clone()).await;
                ServerSpans::finish(&context, response.status());
                response
            }
        };
        seal(&mut response, &self.metrics, &method, route, started);
        Ok(response)
    }
}

/// What every answer gets on its way out, whichever path made it (this layer or
/// [`crate::hot_routes`]): the security headers, and the request counted and timed from `started`.
pub fn seal(response: &mut Response, metrics: &FrontendMetrics, method: &Method, route: RouteLabel, started: Instant) {
    add_security_headers(response);
    metrics.observe(method, route, response.status(), started.elapsed());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use poem::test::TestClient;
    use poem::{Route, get, handler};

    use super::*;

    #[handler]
    fn panics() -> &'static str {
        panic!("a bug in a handler")
    }

    #[handler]
    async fn too_slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "late"
    }

    fn frontline(limits: Limits) -> (TestClient<Frontline<Route>>, Arc<FrontendMetrics>) {
        let metrics = Arc::new(FrontendMetrics::new("test", &["/panics", "/slow"], &[], false));
        let routes = Route::new().at("/panics", get(panics)).at("/slow", get(too_slow));
        (TestClient::new(Frontline::new(routes, limits, metrics.clone(), None)), metrics)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_the_json_500_with_the_security_headers_and_is_counted() {
        let (client, metrics) = frontline(Limits::default());
        let response = client.get("/panics").send().await;
        response.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        response.assert_header("x-content-type-options", "nosniff");
        response.assert_header("cache-control", "no-store");
        let body: serde_json::Value = response.json().await.value().deserialize();
        assert_eq!(body["error"], "internal_error", "{body}");
        assert!(!body.to_string().contains("a bug in a handler"), "the panic message leaked: {body}");
        // The server keeps serving after a panic.
        client.get("/panics").send().await.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        let scrape = metrics.render(&crate::cache::StateCache::default());
        assert!(scrape.contains(r#"btc_http_requests_total{method="GET",route="/panics",status="500"} 2"#), "{scrape}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_timeout_answers_503() {
        let limits = Limits { request_timeout: Duration::from_secs(2), ..Limits::default() };
        let (client, _) = frontline(limits);
        let response = client.get("/slow").send().await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        response.assert_header("retry-after", "5");
        let body: serde_json::Value = response.json().await.value().deserialize();
        assert_eq!(body["error"], "timeout", "{body}");
    }
}
