//! What the spec says each operation answers, beyond its own 200: the caching headers, the `304`,
//! the `text/plain` alternative, and every error status with its JSON [`ErrorBody`], including
//! those the server layers answer for any operation ([`crate::frontline`]: 405, 413, 431, 500 and
//! the timeout's 503).
//!
//! Two reusable shapes: [`Answer<D>`] for an operation whose handler builds its own response (the
//! price, average and pairs routes, the history's candles and ticks), described by a [`Documented`]
//! type; and [`Hardened<R>`], which adds the server layers' errors to any `ApiResponse` (probes).

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use super::errors::ErrorBody;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The spec of an operation answered with [`Answer`].
pub trait Documented {
    /// The body of its 200.
    type Body: Type;
    /// The media type of its 200.
    const MEDIA_TYPE: &'static str = JSON;
    /// What its 200 is.
    const OK: &'static str;
    /// With a `text/plain` alternative of the 200 (the bare number), negotiated on `Accept`.
    const TEXT: bool = false;
    /// Its 200 carries an `ETag` and it answers `If-None-Match` with a 304.
    const ETAG: bool = false;
    /// What its `Cache-Control` is, for the spec.
    const CACHE_CONTROL: &'static str;
    /// It takes parameters, so a malformed one is a 400 (see [`WithParams`]).
    const PARAMETERS: bool = false;
    /// The error statuses it answers itself (404, 503; a 400 of its own), described.
    const ERRORS: &'static [(u16, &'static str)];
}

/// `D` on an operation with parameters: the same answers, and a 400 for a parameter that cannot be read.
pub struct WithParams<D>(PhantomData<fn() -> D>);

impl<D: Documented> Documented for WithParams<D> {
    type Body = D::Body;
    const MEDIA_TYPE: &'static str = D::MEDIA_TYPE;
    const OK: &'static str = D::OK;
    const TEXT: bool = D::TEXT;
    const ETAG: bool = D::ETAG;
    const CACHE_CONTROL: &'static str = D::CACHE_CONTROL;
    const PARAMETERS: bool = true;
    const ERRORS: &'static [(u16, &'static str)] = D::ERRORS;
}

const BAD_PARAMETERS: &str = "A malformed request: a parameter that cannot be read.";

/// The response of an operation described by `D`, built by its handler.
pub struct Answer<D>(Response, PhantomData<fn() -> D>);

impl<D> Answer<D> {
    pub fn new(response: Response) -> Self {
        Self(response, PhantomData)
    }
}

impl<D> IntoResponse for Answer<D> {
    fn into_response(self) -> Response {
        self.0
    }
}

impl<D: Documented> ApiResponse for Answer<D> {
    fn meta() -> MetaResponses {
        let mut content = vec![MetaMediaType { content_type: D::MEDIA_TYPE, schema: D::Body::schema_ref() }];
        if D::TEXT {
            content.push(MetaMediaType { content_type: TEXT, schema: f64::schema_ref() });
        }
        let mut responses = vec![MetaResponse {
            description: D::OK,
            status: Some(200),
            status_range: None,
            content,
            headers: ok_headers::<D>(),
        }];
        if D::ETAG {
            responses.push(MetaResponse {
                description: "Not modified: the `If-None-Match` names the current `ETag`. No body.",
                status: Some(304),
                status_range: None,
                content: vec![],
                headers: ok_headers::<D>(),
            });
        }
        responses.extend(D::ERRORS.iter().map(|&(status, description)| error(status, description)));
        if D::PARAMETERS && D::ERRORS.iter().all(|&(status, _)| status != 400) {
            responses.push(error(400, BAD_PARAMETERS));
        }
        add_server_errors(&mut responses);
        responses.sort_by_key(|response| response.status);
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        D::Body::register(registry);
        ErrorBody::register(registry);
    }
}

/// `R` with the errors the server layers answer for any operation.
pub struct Hardened<R>(pub R);

impl<R: IntoResponse> IntoResponse for Hardened<R> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<R: ApiResponse> ApiResponse for Hardened<R> {
    fn meta() -> MetaResponses {
        let mut meta = R::meta();
        add_server_errors(&mut meta.responses);
        meta.responses.sort_by_key(|response| response.status);
        meta
    }

    fn register(registry: &mut Registry) {
        R::register(registry);
        ErrorBody::register(registry);
    }
}

/// The statuses [`crate::frontline`] and the router answer for any operation.
const SERVER_ERRORS: [(u16, &str); 5] = [
    (405, "Method not allowed: the API is read-only (`Allow: GET`)."),
    (413, "The request has a body (the API takes none), or declares one over the limit."),
    (431, "The request's headers are larger than the limit."),
    (500, "Internal error: details stay in the server's logs."),
    (503, "Unavailable: no price yet, the newest is older than the staleness limit, or the request timed out."),
];

/// Adds the server layers' errors to `responses`; a status it already documents (a probe's text
/// 503) gains the JSON body as a second media type.
fn add_server_errors(responses: &mut Vec<MetaResponse>) {
    for (status, description) in SERVER_ERRORS {
        match responses.iter_mut().find(|response| response.status == Some(status)) {
            Some(documented) if documented.content.iter().all(|media| media.content_type != JSON) => {
                documented.content.push(MetaMediaType { content_type: JSON, schema: ErrorBody::schema_ref() });
            }
            Some(_) => {}
            None => responses.push(error(status, description)),
        }
    }
}

/// An error answer: the JSON [`ErrorBody`], `Cache-Control: no-store`, and the headers its status adds.
fn error(status: u16, description: &'static str) -> MetaResponse {
    let mut headers =
        vec![header("Cache-Control", "Always `no-store`: an error is never cached.", String::schema_ref())];
    match status {
        405 => headers.push(header("Allow", "The methods the resource supports: `GET`.", String::schema_ref())),
        503 => headers.push(header("Retry-After", "Seconds to wait before asking again.", u64::schema_ref())),
        _ => {}
    }
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType { content_type: JSON, schema: ErrorBody::schema_ref() }],
        headers,
    }
}

fn ok_headers<D: Documented>() -> Vec<MetaHeader> {
    let mut headers = vec![header("Cache-Control", D::CACHE_CONTROL, String::schema_ref())];
    if D::ETAG {
        headers.push(header(
            "ETag",
            "Weak tag of the state and representation served (`W/\"<stream created, ms>-<sequence>-<json|text>\"`): \
             send it back in `If-None-Match` to get a 304 while the state is the same.",
            String::schema_ref(),
        ));
    }
    if D::TEXT {
        headers.push(header("Vary", "`accept`: the representation depends on `Accept`.", String::schema_ref()));
    }
    headers
}

fn header(name: &str, description: &str, schema: MetaSchemaRef) -> MetaHeader {
    MetaHeader {
        name: name.to_string(),
        description: Some(description.to_string()),
        required: true,
        deprecated: false,
        schema,
    }
}
