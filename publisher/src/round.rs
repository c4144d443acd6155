//! The round: poll the due sources concurrently, keep each source's latest quote, and turn the
//! fresh ones into at most one tick. Logs once per change of state, never once per round, so an
//! outage of one exchange is one warning, not a flood.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btc_common::{SCHEMA_VERSION, SourceQuote, Tick, names};
use chrono::{DateTime, Utc};
use futures::future::join_all;

use crate::config::PublisherConfig;
use crate::consensus::{ConsensusRules, NoTick, OutlierFilter};
use crate::exchanges::Source;
use crate::health::{BreakerRules, BreakerState, SourceHealth, Transition};
use crate::metrics::PublisherMetrics;
use crate::poller::{FetchError, Poller};
use crate::quote::Quote;

/// Everything the publisher remembers between rounds.
pub struct Rounds {
    endpoints: Vec<(Source, String)>,
    poller: Poller,
    consensus: ConsensusRules,
    breaker: BreakerRules,
    max_quote_age: Duration,
    health: HashMap<Source, SourceHealth>,
    latest: HashMap<Source, Quote>,
    /// Last failure kind per source, to log a failure once and its recovery once.
    failing: HashMap<Source, &'static str>,
    filter: OutlierFilter,
    /// Why the previous round made no tick, to log a lost or regained quorum once.
    last_no_tick: Option<NoTick>,
    metrics: Arc<PublisherMetrics>,
}

impl Rounds {
    pub fn new(config: &PublisherConfig, poller: Poller, metrics: Arc<PublisherMetrics>) -> Self {
        let endpoints = config.endpoints();
        let health = endpoints.iter().map(|(s, _)| (*s, SourceHealth::new(s.exchange().min_interval()))).collect();
        Self {
            endpoints,
            poller,
            consensus: config.consensus_rules(),
            breaker: config.breaker_rules(),
            max_quote_age: config.max_quote_age,
            health,
            latest: HashMap::new(),
            failing: HashMap::new(),
            filter: OutlierFilter::default(),
            last_no_tick: None,
            metrics,
        }
    }

    /// Runs the round of the slot starting at `slot` and returns its tick, if there is a quorum.
    pub async fn run(&mut self, slot: DateTime<Utc>) -> Option<Tick> {
        let now = Instant::now();
        let mut due = Vec::new();
        for (source, url) in &self.endpoints {
            if let Some(health) = self.health.get_mut(source)
                && health.is_due(now)
            {
                health.record_request(now);
                due.push((*source, url.as_str()));
            }
        }
        let poller = &self.poller;
        let results = join_all(due.iter().map(|(source, url)| async move {
            let started = Instant::now();
            let result = poller.fetch(*source, url).await;
            (*source, result, started.elapsed())
        }))
        .await;
        for (source, result, elapsed) in results {
            let name = source.name();
            let outcome = result.as_ref().err().map_or("ok", FetchError::kind);
            self.metrics.fetches.with_label_values(&[name, outcome]).inc();
            self.metrics.fetch_duration.with_label_values(&[name]).observe(elapsed.as_secs_f64());
            self.metrics.source_up.with_label_values(&[name]).set(i64::from(result.is_ok()));
            self.record(source, result);
            if let Some(health) = self.health.get(&source) {
                let open = matches!(health.state(), BreakerState::Open { .. });
                self.metrics.circuit_open.with_label_values(&[name]).set(i64::from(open));
            }
        }
        self.consensus_tick(slot)
    }

    fn record(&mut self, source: Source, result: Result<Quote, FetchError>) {
        let Some(health) = self.health.get_mut(&source) else {
            return;
        };
        match result {
            Ok(quote) => {
                if health.on_success() == Some(Transition::Closed) {
                    tracing::info!(%source, "circuit breaker closed");
                }
                if let Some(kind) = self.failing.remove(&source) {
                    tracing::info!(%source, previous_failure = kind, "source recovered");
                }
                self.latest.insert(source, quote);
            }
            Err(error) => {
                let now = Instant::now();
                if let FetchError::RateLimited { retry_after, .. } = &error {
                    health.on_rate_limited(now, *retry_after, &self.breaker);
                } else if let Some(Transition::Opened { cooldown }) = health.on_failure(now, &self.breaker) {
                    tracing::warn!(%source, ?cooldown, "circuit breaker opened");
                }
                let first = self.failing.insert(source, error.kind()) != Some(error.kind());
                if first && matches!(error, FetchError::RateLimited { .. }) {
                    tracing::warn!(%source, %error, "source asks us to slow down; backing off (breaker untouched)");
                } else if first {
                    tracing::warn!(%source, %error, "source failed; skipping it until it answers again");
                } else {
                    tracing::debug!(%source, %error, "source still failing");
                }
            }
        }
    }

    fn consensus_tick(&mut self, slot: DateTime<Utc>) -> Option<Tick> {
        let oldest_fresh = Utc::now() - self.max_quote_age;
        let fresh: Vec<Quote> = self
            .endpoints
            .iter()
            .filter_map(|(source, _)| self.latest.get(source))
            .filter(|quote| quote.effective_time() >= oldest_fresh)
            .cloned()
            .collect();
        let (result, changes) = self.filter.apply(&fresh, self.consensus);
        for source in &changes.excluded {
            self.metrics.outliers.with_label_values(&[source.name()]).inc();
            tracing::warn!(%source, "quote excluded as an outlier");
        }
        for source in &changes.readmitted {
            tracing::info!(%source, "outlier back within half the threshold; re-admitted");
        }
        match result {
            Ok(consensus) => {
                if self.last_no_tick.take().is_some() {
                    tracing::info!(used = consensus.dispersion.used, "quorum regained; publishing ticks again");
                }
                Some(Tick {
                    schema_version: SCHEMA_VERSION,
                    pair: names::PAIR.to_string(),
                    time: slot,
                    price: consensus.price,
                    dispersion: consensus.dispersion,
                    sources: consensus
                        .quotes
                        .into_iter()
                        .map(|(quote, status)| SourceQuote {
                            source: quote.source.name().to_string(),
                            price: quote.price.get(),
                            quote_time: quote.effective_time(),
                            status,
                        })
                        .collect(),
                })
            }
            Err(no_tick) => {
                let reason = match no_tick {
                    NoTick::NoQuotes => "no_quotes",
                    NoTick::NoQuorum { .. } => "no_quorum",
                };
                self.metrics.rounds_without_tick.with_label_values(&[reason]).inc();
                if self.last_no_tick.as_ref() != Some(&no_tick) {
                    tracing::warn!(reason = %no_tick, fresh_quotes = fresh.len(), "no tick: not publishing a price this round");
                }
                self.last_no_tick = Some(no_tick);
                None
            }
        }
    }
}
