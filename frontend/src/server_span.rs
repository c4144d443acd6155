//! The server span of each request, made here rather than by poem's `OpenTelemetryTracing`, for
//! two reasons. Its name and indexed attributes come from fixed sets (poem names the span after
//! the method and the whole URI, so every made-up path is a new span name in the trace backend).
//! And an incoming `traceparent` is continued only when the operator trusts the callers: by
//! default a request starts a new trace and keeps the caller's context as a link, so that nobody
//! on the internet chooses our trace ids or forces sampling.

use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use poem::http::{HeaderMap, StatusCode};
use poem::web::RealIp;
use poem::{FromRequest, Request};

use crate::api::errors::bounded;

/// Most characters of the request's URI recorded in `url.full`: a span waits in the exporter's
/// queue (up to 2,048 of them) until it is sent, so its size must not be the client's choice.
const URL_MAX_CHARS: usize = 256;

/// Starts and ends the server spans of one app.
pub struct ServerSpans {
    tracer: BoxedTracer,
    /// Continue the caller's trace (`TRUST_INCOMING_TRACE_CONTEXT`) instead of linking it.
    trust_incoming: bool,
}

impl ServerSpans {
    pub fn new(tracer: BoxedTracer, trust_incoming: bool) -> Self {
        Self { tracer, trust_incoming }
    }

    /// Starts the span of `request`, whose route is `route` (`None`: no route matched), and
    /// returns the context holding it.
    pub async fn start(&self, request: &Request, route: Option<&'static str>) -> Context {
        let incoming = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Headers(request.headers()))
        });
        let caller = incoming.span().span_context().clone();
        let (parent, links) = match (self.trust_incoming, caller.is_valid()) {
            (true, _) => (incoming, Vec::new()),
            (false, true) => (Context::new(), vec![Link::with_context(caller)]),
            (false, false) => (Context::new(), Vec::new()),
        };
        let method = semconv_method(request.method());
        let name = match (method, route) {
            ("_OTHER", Some(route)) => format!("HTTP {route}"),
            ("_OTHER", None) => "HTTP".to_string(),
            (method, Some(route)) => format!("{method} {route}"),
            (method, None) => method.to_string(),
        };
        let client = RealIp::from_request_without_body(request).await.ok().and_then(|ip| ip.0);
        let client = client.map(|ip| ip.to_string()).unwrap_or_else(|| request.remote_addr().to_string());
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.full", bounded(&request.original_uri().to_string(), URL_MAX_CHARS)),
            KeyValue::new("client.address", client),
            KeyValue::new("network.protocol.version", protocol_version(request.version())),
        ];
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Ends the span in `context` with the answer's status (5xx marks it as an error).
    pub fn finish(context: &Context, status: StatusCode) {
        let span = context.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_status(Status::error(status.as_str().to_string()));
        }
        span.end();
    }
}

/// `http.request.method` as the semantic conventions want it: a known method, else `_OTHER`.
fn semconv_method(method: &poem::http::Method) -> &'static str {
    match crate::metrics::method_label(method) {
        crate::metrics::OTHER_METHOD => "_OTHER",
        known => known,
    }
}

fn protocol_version(version: poem::http::Version) -> &'static str {
    match version {
        poem::http::Version::HTTP_09 => "0.9",
        poem::http::Version::HTTP_10 => "1.0",
        poem::http::Version::HTTP_11 => "1.1",
        poem::http::Version::HTTP_2 => "2",
        poem::http::Version::HTTP_3 => "3",
        _ => "other",
    }
}

/// Reads trace context headers from a request.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
