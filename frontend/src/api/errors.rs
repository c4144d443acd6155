//! The one error body every failure answers with, and the translation of the router's own errors
//! (404, 405, 400...) into it: never HTML, never a stack trace.

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::Object;

/// An error answer.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found`, `no_price_yet`, `stale_price`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
    /// With `unknown_pair`: the pairs configured here.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<Vec<String>>,
    /// With `bad_parameter`: the query parameter at fault, e.g. `interval`, `from`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ErrorBody {
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        Self {
            error: error.to_string(),
            message: message.into(),
            status: status.as_u16(),
            pairs: None,
            parameter: None,
        }
    }

    pub fn with_pairs(self, pairs: Vec<String>) -> Self {
        Self { pairs: Some(pairs), ..self }
    }

    /// A 400 `bad_parameter` naming the query parameter at fault.
    pub fn bad_parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self { parameter: Some(parameter.to_string()), ..Self::new(StatusCode::BAD_REQUEST, "bad_parameter", message) }
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        Response::builder().status(status).content_type("application/json; charset=utf-8").body(body)
    }
}

/// The JSON answer to an error the app raised for a request to `path`.
pub fn error_response(error: &poem::Error, path: &str) -> Response {
    let mut response = error_body(error, path).into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 says which methods the resource supports. The API is read-only.
        response.headers_mut().insert(poem::http::header::ALLOW, poem::http::HeaderValue::from_static("GET"));
    }
    response
}

fn error_body(error: &poem::Error, path: &str) -> ErrorBody {
    if let Some(param) = error.downcast_ref::<poem_openapi::error::ParseParamError>() {
        // A query parameter poem-openapi could not parse or validate: name it.
        return ErrorBody::bad_parameter(param.name, bounded(&param.reason, ECHOED_CHARS));
    }
    let status = error.status();
    match status {
        StatusCode::NOT_FOUND => {
            ErrorBody::new(status, "not_found", format!("no such resource: {}", bounded(path, ECHOED_CHARS)))
        }
        StatusCode::METHOD_NOT_ALLOWED => ErrorBody::new(
            status,
            "method_not_allowed",
            format!("method not allowed on {}", bounded(path, ECHOED_CHARS)),
        ),
        // Internal details stay in the logs; the client gets the status and a plain sentence.
        status if status.is_server_error() => {
            tracing::error!(error = %bounded(&error.to_string(), 512), path = %bounded(path, ECHOED_CHARS), "request failed");
            ErrorBody::new(status, "internal_error", "internal error")
        }
        status => ErrorBody::new(
            status,
            status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_").as_str(),
            bounded(&error.to_string(), ECHOED_CHARS),
        ),
    }
}

/// The JSON 404 for a pair that is not configured, listing the ones that are.
pub fn unknown_pair(pairs: &[btc_contract::Pair], asset: &str, currency: &str) -> ErrorBody {
    let configured: Vec<String> = pairs.iter().map(btc_contract::Pair::to_string).collect();
    let asked = bounded(&format!("{asset}/{currency}"), 32);
    let message = format!("unknown pair {asked:?}; configured: {}", configured.join(", "));
    ErrorBody::new(StatusCode::NOT_FOUND, "unknown_pair", message).with_pairs(configured)
}

/// Most characters of a request's own text (its path, a parser's message about it) that an
/// answer or a log line repeats.
pub const ECHOED_CHARS: usize = 128;

/// `text` as an answer or a log line may repeat it: at most `max_chars` characters (then `…`),
/// control characters escaped, so that no request can fill a log or forge a log line.
pub fn bounded(text: &str, max_chars: usize) -> String {
    let mut shown = String::with_capacity(text.len().min(max_chars + 8));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_repeated_from_a_request_is_cut_and_escaped() {
        assert_eq!(bounded("/btc/USD", 128), "/btc/USD");
        assert_eq!(bounded("abcdef", 3), "abc…");
        assert_eq!(bounded("a\nb\u{1b}[2J", 128), "a\\nb\\u{1b}[2J");
        let long = format!("/{}", "x".repeat(100_000));
        let body = error_body(&poem::Error::from_status(StatusCode::NOT_FOUND), &long);
        assert!(body.message.chars().count() < 200, "{} characters", body.message.len());
    }
}
