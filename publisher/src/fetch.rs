//! One HTTP request to one exchange, mapped to a [`Quote`] or a [`FetchError`].
//!
//! The whole request, body included, runs under one timeout, so a slow-drip body cannot hold a
//! round; bodies are capped in size, so a huge answer cannot exhaust memory. Every way an exchange
//! says "slow down" ends in [`FetchError::RateLimited`]: a 429 or 418, a weight header near its
//! limit (Binance.US), or an error inside a 200 (Kraken, Bitfinex).
//!
//! The answer is trusted no further than needed to read a price. A redirect is refused, never
//! followed: the tickers answer at their own URL, so a redirect means a moved API, a captive
//! portal or a hijacked name, and following it could lead anywhere (another host, plain http, an
//! address inside the cluster) and cost a second request against the rate limit. Plain http is
//! refused by the client unless the operator configured an `http://` URL (the local stand-ins);
//! the exchanges' own URLs are all https. Text from the answer reaches errors, and so the logs,
//! only as an [`Excerpt`].

use std::time::Duration;

use btc_contract::Pair;
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER};
use tracing::Instrument;

use crate::excerpt::Excerpt;
use crate::exchanges::{Exchange, ParseError, Source};
use crate::quote::Quote;

/// Largest body read from an exchange; real ticker answers are well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a source gave no quote this round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Transport(Excerpt),
    /// The exchange asks us to slow down; `retry_after` is its own wait, if it named one.
    #[error("rate limited (HTTP {status}: {signal}), retry after {retry_after:?}")]
    RateLimited { status: u16, signal: Excerpt, retry_after: Option<Duration> },
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 3xx: refused, not followed.
    #[error("redirect refused (HTTP {status} to {location})")]
    Redirect { status: u16, location: Excerpt },
    /// An `http://` URL while the client speaks https only.
    #[error("plain http refused: the exchanges are polled over https")]
    InsecureUrl,
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// The exchange does not list the pair: nothing was sent.
    #[error("the exchange does not list this pair")]
    Unlisted,
    #[error(transparent)]
    Parse(ParseError),
}

/// Whether the client may send requests over plain http.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    /// https only: the exchanges' own URLs, and operators' https overrides.
    Refused,
    /// Also http, for `SOURCE_URLS` overrides that point at local stand-ins.
    Allowed,
}

impl From<ParseError> for FetchError {
    fn from(error: ParseError) -> Self {
        match error {
            // Said inside an HTTP 200: a rate limit like a 429, never a fault of the source.
            ParseError::RateLimited(signal) => FetchError::RateLimited { status: 200, signal, retry_after: None },
            other => FetchError::Parse(other),
        }
    }
}

impl FetchError {
    /// A short label for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Transport(_) => "transport",
            FetchError::RateLimited { .. } | FetchError::Parse(ParseError::RateLimited(_)) => "rate_limited",
            FetchError::Status(_) => "http_status",
            FetchError::Redirect { .. } => "redirect",
            FetchError::InsecureUrl => "insecure_url",
            FetchError::BodyTooLarge => "body_too_large",
            FetchError::Unlisted => "unlisted",
            FetchError::Parse(ParseError::Price(_)) => "invalid_price",
            FetchError::Parse(ParseError::Exchange(_)) => "exchange_error",
            FetchError::Parse(_) => "invalid_body",
        }
    }
}

/// Sends ticker requests with one shared connection pool.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    plaintext: Plaintext,
}

impl Fetcher {
    pub fn new(timeout: Duration, plaintext: Plaintext) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("btc-price-publisher/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(plaintext == Plaintext::Refused)
            .build()?;
        Ok(Self { client, timeout, plaintext })
    }

    /// Fetches and parses one quote of `pair` from `base_url` (the exchange's API root or a
    /// stand-in), in an HTTP client span that follows the OpenTelemetry HTTP conventions.
    pub async fn fetch(&self, source: Source, pair: &Pair, base_url: &str) -> Result<Quote, FetchError> {
        let exchange = source.exchange();
        let path = exchange.path(pair).ok_or(FetchError::Unlisted)?;
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        let (host, port) = reqwest::Url::parse(&url)
            .map(|u| (u.host_str().unwrap_or_default().to_string(), u.port_or_known_default().unwrap_or_default()))
            .unwrap_or_default();
        let route = path.split('?').next().unwrap_or_default();
        let span = tracing::info_span!(
            "fetch",
            otel.name = %format!("GET {route}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = "GET",
            url.full = %url,
            server.address = %host,
            server.port = port,
            http.response.status_code = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
            price.source = source.name(),
            price.pair = %pair,
            price.outcome = tracing::field::Empty,
        );
        let result: Result<Quote, FetchError> = async {
            if self.plaintext == Plaintext::Refused && !url.starts_with("https://") {
                return Err(FetchError::InsecureUrl);
            }
            let answer = tokio::time::timeout(self.timeout, self.get(exchange, &url))
                .await
                .map_err(|_| FetchError::Timeout(self.timeout))??;
            let received_at = Utc::now();
            let parsed = exchange.parse(pair, &answer.body).map_err(|error| match FetchError::from(error) {
                FetchError::RateLimited { signal, .. } => {
                    FetchError::RateLimited { status: answer.status, signal, retry_after: answer.retry_after }
                }
                other => other,
            })?;
            Ok(Quote { source, price: parsed.price, quote_time: parsed.quote_time, received_at })
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(_) => span.record("price.outcome", "ok"),
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error.kind());
                span.record("price.outcome", error.kind())
            }
        };
        result
    }

    /// The answer's body, or the rate limit its status or headers signal.
    async fn get(&self, exchange: &dyn Exchange, url: &str) -> Result<Answer, FetchError> {
        let mut response = self.client.get(url).send().await.map_err(|e| FetchError::Transport(describe(&e)))?;
        let status = response.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        let headers = response.headers();
        if status.is_redirection() {
            let location = headers.get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let location = Excerpt::new(location.as_deref().unwrap_or("nowhere"));
            return Err(FetchError::Redirect { status: status.as_u16(), location });
        }
        let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let throttle = exchange.throttle(headers, Utc::now());
        if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
            // Binance.US answers 418 once it has banned an IP for ignoring 429s: same remedy, wait.
            let signal = status.canonical_reason().unwrap_or("rate limited").into();
            let retry_after = retry_after.or(throttle.map(|t| t.wait));
            return Err(FetchError::RateLimited { status: status.as_u16(), signal, retry_after });
        }
        if let Some(throttle) = throttle {
            // The budget is nearly spent: stop before the exchange starts refusing. The price in
            // this answer is given up with it, as a 429 gives none.
            let signal = throttle.reason.into();
            return Err(FetchError::RateLimited { status: status.as_u16(), signal, retry_after: Some(throttle.wait) });
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(FetchError::BodyTooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::Transport(describe(&e)))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status: status.as_u16(), retry_after, body })
    }
}

/// A successful answer: a body to parse, and the wait its headers named, should the body say
/// it is a rate limit.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// `Retry-After` in delta-seconds. The HTTP-date form is rare on APIs and falls back to the
/// default backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// reqwest's Display hides the cause ("error sending request"); the chain says what happened.
fn describe(error: &reqwest::Error) -> Excerpt {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
