//! Limits and headers every frontend response goes through (applied by [`crate::frontline`]): a
//! cap on request header and body size, a per-request timeout, panics turned into the JSON 500,
//! security headers, and CORS for the origins an operator allows (Swagger UI served from elsewhere).

use std::time::Duration;

use poem::Response;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use poem::middleware::Cors;

use crate::api::errors::ErrorBody;

/// HTTP limits of a frontend.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest sum of request header names and values, bytes.
    pub max_header_bytes: usize,
    /// Largest request body, bytes (the API has no request bodies).
    pub max_body_bytes: usize,
    /// Longest a request may take to answer.
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty means no CORS headers at all.
    pub cors_origins: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
        }
    }
}

/// CORS for the origins in `limits`, or `None` when no origin is allowed (no CORS headers at all).
pub fn cors(limits: &Limits) -> Option<Cors> {
    (!limits.cors_origins.is_empty()).then(|| {
        Cors::new()
            .allow_origins(limits.cors_origins.iter().map(String::as_str))
            .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
            .max_age(3600)
    })
}

/// The error answer for a request with `headers` over the header or body limits, if it is.
pub fn over_limits(headers: &HeaderMap, limits: &Limits) -> Option<ErrorBody> {
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > limits.max_header_bytes {
        return Some(ErrorBody::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("request headers are larger than {} bytes", limits.max_header_bytes),
        ));
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes) || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Some(ErrorBody::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {} bytes", limits.max_body_bytes),
        ));
    }
    None
}

/// The headers every answer carries, parsed once.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 3] = [
    (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
    (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
    (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
];

/// Adds the headers every answer carries.
pub fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, value);
    }
    // Each route sets its own `Cache-Control` (see `crate::api::caching`); an answer that did not
    // (probes, `/`) is never stored, nor is any error, whatever its route said: a CDN that kept a
    // 503 or a 404 would keep serving it after the price came back.
    let status = response.status();
    let no_store = HeaderValue::from_static("no-store");
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response.headers_mut().entry(header::CACHE_CONTROL).or_insert(no_store);
    } else {
        response.headers_mut().insert(header::CACHE_CONTROL, no_store);
    }
}

/// A panic becomes the documented JSON 500; its message stays in the logs.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message =
        panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    tracing::error!(panic = message.as_deref().unwrap_or("?"), "request handler panicked");
    ErrorBody::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error").into_response()
}
