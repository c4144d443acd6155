//! What the rounds know of one feed (one source's pair): its pacing and breaker, its newest quote,
//! and whether it is failing, so that a failure and a recovery are each logged once.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::breaker::{BreakerRules, SourceBreaker, Transition};
use crate::fetch::{FetchError, Fetcher};
use crate::metrics::PublisherMetrics;
use crate::pairs::Feed;
use crate::quote::Quote;

pub(super) struct Polled {
    pub feed: Feed,
    pub breaker: SourceBreaker,
    /// Its newest quote, fresh or not: a round uses it while it is fresh.
    pub latest: Option<Quote>,
    /// Its last failure kind while it fails, to log a failure once and its recovery once.
    failing: Option<&'static str>,
}

impl Polled {
    /// The feed, its first request held back until `started + feed.first_after`.
    pub fn new(feed: Feed, started: Instant) -> Self {
        let mut breaker = SourceBreaker::new(feed.interval);
        breaker.hold_until(started + feed.first_after);
        Self { feed, breaker, latest: None, failing: None }
    }

    /// One request of this feed, counting its own outcome in the metrics when it ends.
    pub fn request(
        &self,
        fetcher: Fetcher,
        metrics: Arc<PublisherMetrics>,
    ) -> impl Future<Output = Result<Quote, FetchError>> + Send + 'static {
        let Feed { source, pair, url, .. } = self.feed.clone();
        async move {
            let started = Instant::now();
            let result = fetcher.fetch(source, &pair, &url).await;
            let (name, pair_name) = (source.name(), pair.as_str());
            let outcome = result.as_ref().err().map_or("ok", FetchError::kind);
            metrics.fetches.with_label_values(&[name, pair_name, outcome]).inc();
            metrics.fetch_duration.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
            metrics.source_up.with_label_values(&[name, pair_name]).set(i64::from(result.is_ok()));
            result
        }
    }

    /// Takes the outcome of a request: the quote, or the failure for the breaker and the log.
    pub fn record(&mut self, result: Result<Quote, FetchError>, rules: &BreakerRules) {
        let (source, pair) = (self.feed.source, &self.feed.pair);
        match result {
            Ok(quote) => {
                if self.breaker.on_success() == Some(Transition::Closed) {
                    tracing::info!(%source, %pair, "circuit breaker closed");
                }
                if let Some(kind) = self.failing.take() {
                    tracing::info!(%source, %pair, previous_failure = kind, "source recovered");
                }
                self.latest = Some(quote);
            }
            Err(error) => {
                let now = Instant::now();
                if let FetchError::RateLimited { retry_after, .. } = &error {
                    self.breaker.on_rate_limited(now, *retry_after, rules);
                } else if let Some(Transition::Opened { cooldown }) = self.breaker.on_failure(now, rules) {
                    tracing::warn!(%source, %pair, ?cooldown, "circuit breaker opened");
                }
                let first = self.failing.replace(error.kind()) != Some(error.kind());
                if first && matches!(error, FetchError::RateLimited { .. }) {
                    tracing::warn!(%source, %pair, %error, "source asks us to slow down; backing off all its pairs (breaker untouched)");
                } else if first {
                    tracing::warn!(%source, %pair, %error, "source failed; skipping it until it answers again");
                } else {
                    tracing::debug!(%source, %pair, %error, "source still failing");
                }
            }
        }
    }
}
