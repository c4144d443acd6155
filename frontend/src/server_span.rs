//! The server span of each request, made here rather than by poem's `OpenTelemetryTracing`, for
//! two reasons. Its name and indexed attributes come from fixed sets (poem names the span after
//! the method and the whole URI, so every made-up path is a new span name in the trace backend).
//! And an incoming `traceparent` is continued only when the operator trusts the callers: by
//! default a request starts a new trace and keeps the caller's context as a link, so that nobody
//! on the internet chooses our trace ids or forces sampling.

use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use std::net::IpAddr;

use opentelemetry::{Context, KeyValue};
use poem::http::{HeaderMap, Method, StatusCode, Uri, Version};
use poem::web::RemoteAddr;

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
    pub fn start(&self, request: &RequestHead<'_>, route: Option<&'static str>) -> Context {
        let incoming =
            opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&Headers(request.headers)));
        let caller = incoming.span().span_context().clone();
        let (parent, links) = match (self.trust_incoming, caller.is_valid()) {
            (true, _) => (incoming, Vec::new()),
            (false, true) => (Context::new(), vec![Link::with_context(caller)]),
            (false, false) => (Context::new(), Vec::new()),
        };
        let method = semconv_method(request.method);
        let name = match (method, route) {
            ("_OTHER", Some(route)) => format!("HTTP {route}"),
            ("_OTHER", None) => "HTTP".to_string(),
            (method, Some(route)) => format!("{method} {route}"),
            (method, None) => method.to_string(),
        };
        let client = client_address(request.headers, request.remote);
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.full", bounded(&request.uri.to_string(), URL_MAX_CHARS)),
            KeyValue::new("client.address", client),
            KeyValue::new("network.protocol.version", protocol_version(request.version)),
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

/// A request's head as received, and the peer's address: what a span records, and all the hot
/// routes read ([`crate::hot_routes`]).
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// As the client sent it.
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub remote: &'a RemoteAddr,
}

impl<'a> RequestHead<'a> {
    /// The head of a request poem has parsed, before any router has taken a prefix off its URI.
    pub fn of(request: &'a poem::Request) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
            remote: request.remote_addr(),
        }
    }
}

/// `client.address`: the client as the proxies in front report it (`X-Real-IP`, then the first
/// `for=` of `Forwarded`, then the first address in `X-Forwarded-For`), else the peer. The same
/// order as poem's `RealIp`, which needs a whole `poem::Request`: the hot path has none.
fn client_address(headers: &HeaderMap, remote: &RemoteAddr) -> String {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let real_ip = || header("x-real-ip").and_then(|value| value.parse::<IpAddr>().ok());
    let forwarded = || {
        let items = rfc7239::parse(header("forwarded")?).collect::<Result<Vec<_>, _>>().ok()?;
        items.into_iter().find_map(|item| match item.forwarded_for {
            Some(rfc7239::NodeIdentifier { name: rfc7239::NodeName::Ip(ip), .. }) => Some(ip),
            _ => None,
        })
    };
    let forwarded_for =
        || header("x-forwarded-for")?.split(',').map(str::trim).find_map(|value| value.parse::<IpAddr>().ok());
    match real_ip().or_else(forwarded).or_else(forwarded_for) {
        Some(ip) => ip.to_string(),
        None => match remote.as_socket_addr() {
            Some(addr) => addr.ip().to_string(),
            None => remote.to_string(),
        },
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

#[cfg(test)]
mod tests {
    use poem::web::RealIp;
    use poem::{FromRequest, Request};

    use super::*;

    /// `client.address` was poem's `RealIp`; the hot routes need it without a `poem::Request`.
    #[tokio::test]
    async fn the_client_address_is_the_one_poem_s_real_ip_finds() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("x-real-ip", "198.51.100.7"), ("x-forwarded-for", "203.0.113.9")],
            &[("x-real-ip", "not an address"), ("x-forwarded-for", "bogus, 203.0.113.9, 10.0.0.1")],
            &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"), ("x-forwarded-for", "203.0.113.9")],
            &[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")],
            &[("forwarded", "for=unknown, for=192.0.2.61")],
            &[("forwarded", "garbage;;"), ("x-forwarded-for", "2001:db8::1")],
        ];
        for headers in cases {
            let mut builder = Request::builder();
            for (name, value) in *headers {
                builder = builder.header(*name, *value);
            }
            let request = builder.finish();
            let real_ip = RealIp::from_request_without_body(&request).await.ok().and_then(|ip| ip.0);
            let poem = real_ip.map(|ip| ip.to_string()).unwrap_or_else(|| request.remote_addr().to_string());
            assert_eq!(client_address(request.headers(), request.remote_addr()), poem, "{headers:?}");
        }
    }
}
