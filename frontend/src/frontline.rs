//! The one layer every request goes through, outside the router: the header and body limits, the
//! request timeout, JSON errors, security headers and the request metrics.
//!
//! One layer rather than a chain of poem middlewares: each middleware boxes a future and moves the
//! request on every call, which `make bench` showed costing more than the API's own work.

use std::sync::Arc;
use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::errors::{ErrorBody, error_response};
use crate::hardening::{Limits, add_security_headers, over_limits};
use crate::metrics::FrontendMetrics;

pub struct Frontline<E> {
    inner: E,
    limits: Limits,
    metrics: Arc<FrontendMetrics>,
    /// Whether requests get a server span, whose `http.route` this layer sets.
    tracing: bool,
}

impl<E> Frontline<E> {
    pub fn new(inner: E, limits: Limits, metrics: Arc<FrontendMetrics>, tracing: bool) -> Self {
        Self { inner, limits, metrics, tracing }
    }
}

impl<E: Endpoint> Endpoint for Frontline<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let method = request.method().clone();
        let route = self.metrics.route(request.uri().path());
        if self.tracing
            && let Some(name) = self.metrics.route_name(route)
        {
            // The semantic-convention route on the server span that poem's tracing middleware opened.
            use opentelemetry::trace::TraceContextExt;
            opentelemetry::Context::current().span().set_attribute(opentelemetry::KeyValue::new("http.route", name));
        }
        let mut response = match over_limits(&request, &self.limits) {
            Some(rejection) => rejection.into_response(),
            None => {
                let uri = request.uri().clone();
                match tokio::time::timeout(self.limits.request_timeout, self.inner.call(request)).await {
                    Ok(Ok(response)) => response.into_response(),
                    Ok(Err(error)) => error_response(&error, uri.path()),
                    Err(_) => ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long")
                        .into_response(),
                }
            }
        };
        add_security_headers(&mut response);
        self.metrics.observe(&method, route, response.status(), started.elapsed());
        Ok(response)
    }
}
