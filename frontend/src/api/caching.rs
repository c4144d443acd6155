//! HTTP caching of the API's answers, for CDNs and polling clients: the `Cache-Control` policy of
//! each route, weak `ETag`s built from a state's stream position, and `If-None-Match` answered with
//! `304 Not Modified` (RFC 9110 §13.1.2, §8.8.3; RFC 9111 §5.2).
//!
//! Every route that serves a state uses it the same way: the price and average routes here, the
//! history's candles (`immutable` for a page of closed candles, `no-store` once it holds the open
//! one). Errors never reach it: [`crate::hardening`] marks every error answer `no-store`.

use chrono::{DateTime, Utc};
use poem::Response;
use poem::http::{HeaderMap, HeaderValue, StatusCode, header};

/// How long a shared cache (a CDN) or a client may reuse an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Never stored: an open candle, an error, a probe.
    NoStore,
    /// Reused for at most this many seconds: a latest price (1 s, the publisher's round).
    MaxAge(u32),
    /// Never changes: a page of closed candles.
    Immutable,
}

impl CachePolicy {
    /// The `Cache-Control` value of this policy.
    pub fn header_value(self) -> HeaderValue {
        match self {
            CachePolicy::NoStore => HeaderValue::from_static("no-store"),
            CachePolicy::MaxAge(1) => HeaderValue::from_static("public, max-age=1"),
            // ASCII digits only: always a valid header value.
            CachePolicy::MaxAge(seconds) => HeaderValue::try_from(format!("public, max-age={seconds}"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-store")),
            CachePolicy::Immutable => HeaderValue::from_static("public, max-age=31536000, immutable"),
        }
    }
}

/// A weak entity tag, `W/"..."`: weak because an answer's `age_seconds` changes with every
/// request while its meaning (the state behind it) does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag(HeaderValue);

impl Etag {
    /// The tag of the state at `position` (the stream's creation time and the state's sequence in
    /// it: a stream created again restarts its sequence), in `representation` (`json`, `text`...).
    pub fn of_position(position: (Option<DateTime<Utc>>, u64), representation: &str) -> Self {
        let (created, sequence) = position;
        let created = created.map_or(0, |time| time.timestamp_millis());
        Self::weak(&format!("{created}-{sequence}-{representation}"))
    }

    /// `W/"<opaque>"`; characters a tag may not hold (`"`, controls, non-ASCII) become `_`.
    pub fn weak(opaque: &str) -> Self {
        let cleaned: String =
            opaque.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
        // Only visible ASCII remains: always a valid header value.
        Self(HeaderValue::try_from(format!("W/\"{cleaned}\"")).unwrap_or_else(|_| HeaderValue::from_static("W/\"\"")))
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The quoted tag without its weakness marker: what a weak comparison compares.
    fn opaque(&self) -> &[u8] {
        strip_weak(self.0.as_bytes())
    }

    /// True when the request's `If-None-Match` (every such header, each a list or `*`) names this
    /// tag by weak comparison (RFC 9110 §13.1.2: `If-None-Match` always compares weakly).
    pub fn matches_if_none_match(&self, request: &HeaderMap) -> bool {
        request.get_all(header::IF_NONE_MATCH).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|tag| tag == b"*" || strip_weak(tag) == self.opaque())
        })
    }
}

fn strip_weak(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// The caching headers of one resource's answer.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    pub etag: &'a Etag,
    pub policy: CachePolicy,
    /// `Vary`, for a resource whose representation depends on request headers (`Accept`).
    pub vary: Option<&'static str>,
}

impl Validators<'_> {
    /// The answer to a GET with `request` headers: `304 Not Modified` with no body when its
    /// `If-None-Match` names the tag, else `body()`; either with `ETag`, `Cache-Control` and `Vary`.
    pub fn answer(self, request: &HeaderMap, body: impl FnOnce() -> Response) -> Response {
        let mut response = if self.etag.matches_if_none_match(request) {
            Response::builder().status(StatusCode::NOT_MODIFIED).finish()
        } else {
            body()
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.header_value().clone());
        headers.insert(header::CACHE_CONTROL, self.policy.header_value());
        if let Some(vary) = self.vary {
            headers.insert(header::VARY, HeaderValue::from_static(vary));
        }
        response
    }
}

/// Sets the `Cache-Control` of `response` to `policy` (for a resource with no tag).
pub fn with_policy(mut response: Response, policy: CachePolicy) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, policy.header_value());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(if_none_match: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in if_none_match {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn a_tag_names_the_stream_position_and_the_representation() {
        let created = DateTime::from_timestamp_millis(1_764_000_000_123);
        assert_eq!(Etag::of_position((created, 42), "json").header_value(), "W/\"1764000000123-42-json\"");
        assert_ne!(Etag::of_position((created, 42), "json"), Etag::of_position((created, 42), "text"));
        assert_eq!(Etag::weak("a\"b\né").header_value(), "W/\"a_b__\"");
    }

    #[test]
    fn if_none_match_compares_weakly_in_lists_and_accepts_a_star() {
        let tag = Etag::weak("1-7-json");
        for matching in
            [&["W/\"1-7-json\""][..], &["\"1-7-json\""], &["\"x\", W/\"1-7-json\""], &["\"x\"", "*"], &["*"]]
        {
            assert!(tag.matches_if_none_match(&request(matching)), "{matching:?}");
        }
        for other in [&[][..], &["W/\"1-8-json\""], &["W/\"1-7-text\""], &["1-7-json"], &[""]] {
            assert!(!tag.matches_if_none_match(&request(other)), "{other:?}");
        }
    }

    #[test]
    fn a_match_is_a_304_without_a_body_and_both_answers_carry_the_headers() {
        let tag = Etag::weak("1-7-json");
        let validators = Validators { etag: &tag, policy: CachePolicy::MaxAge(1), vary: Some("accept") };
        let fresh = validators.answer(&request(&[]), || Response::builder().body("97000.5"));
        let again = validators.answer(&request(&["W/\"1-7-json\""]), || panic!("no body for a 304"));
        assert_eq!((fresh.status(), again.status()), (StatusCode::OK, StatusCode::NOT_MODIFIED));
        for response in [&fresh, &again] {
            assert_eq!(response.headers().get(header::ETAG), Some(tag.header_value()));
            assert_eq!(
                response.headers().get(header::CACHE_CONTROL).map(HeaderValue::as_bytes),
                Some(&b"public, max-age=1"[..])
            );
            assert_eq!(response.headers().get(header::VARY).map(HeaderValue::as_bytes), Some(&b"accept"[..]));
        }
    }

    #[test]
    fn each_policy_has_its_cache_control() {
        assert_eq!(CachePolicy::NoStore.header_value(), "no-store");
        assert_eq!(CachePolicy::MaxAge(300).header_value(), "public, max-age=300");
        assert_eq!(CachePolicy::Immutable.header_value(), "public, max-age=31536000, immutable");
    }
}
