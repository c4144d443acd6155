//! The round: start the due sources' requests concurrently, wait for them until the round's
//! deadline, keep each source's latest quote, and turn the fresh ones into at most one tick.
//!
//! A request still running at the deadline goes on in the background, and its quote is used by a
//! later round while it is fresh, so one slow exchange does not hold every round back. A source
//! with a request in flight is not asked again until it ends (its rate limit counts requests,
//! not rounds). Logs once per change of state, never once per round, so an outage of one exchange
//! is one warning, not a flood.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btc_contract::{QuoteStatus, SCHEMA_VERSION, SourceQuote, Tick, names};
use chrono::{DateTime, Utc};
use tokio::task::{Id, JoinSet};
use tracing::Instrument;

use crate::breaker::{BreakerRules, BreakerState, SourceBreaker, Transition};
use crate::config::PublisherConfig;
use crate::consensus::{Consensus, ConsensusRules, NoTick, OutlierFilter};
use crate::exchanges::Source;
use crate::fetch::{FetchError, Fetcher};
use crate::metrics::PublisherMetrics;
use crate::quote::Quote;

/// Everything the publisher remembers between rounds.
pub struct Rounds {
    sources: Vec<Polled>,
    fetcher: Fetcher,
    consensus: ConsensusRules,
    breaker_rules: BreakerRules,
    max_quote_age: Duration,
    /// How long after its slot's start a round waits for its requests.
    round_deadline: Duration,
    in_flight: InFlight<Result<Quote, FetchError>>,
    filter: OutlierFilter,
    /// Why the previous round made no tick, to log a lost or regained quorum once.
    last_no_tick: Option<NoTick>,
    metrics: Arc<PublisherMetrics>,
}

/// What the rounds know of one source.
struct Polled {
    source: Source,
    url: String,
    breaker: SourceBreaker,
    /// Its newest quote, fresh or not: a round uses it while it is fresh.
    latest: Option<Quote>,
    /// Its last failure kind while it fails, to log a failure once and its recovery once.
    failing: Option<&'static str>,
}

impl Rounds {
    pub fn new(config: &PublisherConfig, fetcher: Fetcher, metrics: Arc<PublisherMetrics>) -> Self {
        let sources = config
            .endpoints()
            .into_iter()
            .map(|(source, url)| Polled {
                source,
                url,
                breaker: SourceBreaker::new(source.exchange().min_interval()),
                latest: None,
                failing: None,
            })
            .collect();
        Self {
            sources,
            fetcher,
            consensus: config.consensus_rules(),
            breaker_rules: config.breaker_rules(),
            max_quote_age: config.max_quote_age,
            round_deadline: config.round_deadline(),
            in_flight: InFlight::default(),
            filter: OutlierFilter::default(),
            last_no_tick: None,
            metrics,
        }
    }

    /// Runs the round of the slot starting at `slot` and returns its tick, if there is a quorum.
    /// Returns once every request in flight has ended, or at the round's deadline.
    pub async fn run(&mut self, slot: DateTime<Utc>) -> Option<Tick> {
        let left = (slot + self.round_deadline - Utc::now()).to_std().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + left;
        self.start_due_requests();
        for (source, result) in self.in_flight.until(deadline).await {
            let Some(polled) = self.sources.iter_mut().find(|polled| polled.source == source) else {
                continue;
            };
            polled.record(result, &self.breaker_rules);
            let open = matches!(polled.breaker.state(), BreakerState::Open { .. });
            self.metrics.circuit_open.with_label_values(&[source.name()]).set(i64::from(open));
        }
        self.consensus_tick(slot)
    }

    /// Starts a request to every source that is due and has none in flight. Each request counts
    /// its own outcome in the metrics when it ends, in whichever round that is; its span is a
    /// child of the round that started it.
    fn start_due_requests(&mut self) {
        let now = Instant::now();
        for polled in &mut self.sources {
            // Checked first: `is_due` moves an expired breaker to half-open, which is the trial
            // request's to do.
            if self.in_flight.contains(polled.source) || !polled.breaker.is_due(now) {
                continue;
            }
            polled.breaker.record_request(now);
            let (source, url, fetcher, metrics) =
                (polled.source, polled.url.clone(), self.fetcher.clone(), self.metrics.clone());
            let request = async move {
                let started = Instant::now();
                let result = fetcher.fetch(source, &url).await;
                let name = source.name();
                let outcome = result.as_ref().err().map_or("ok", FetchError::kind);
                metrics.fetches.with_label_values(&[name, outcome]).inc();
                metrics.fetch_duration.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
                metrics.source_up.with_label_values(&[name]).set(i64::from(result.is_ok()));
                result
            };
            self.in_flight.start(source, request.in_current_span());
        }
    }

    fn consensus_tick(&mut self, slot: DateTime<Utc>) -> Option<Tick> {
        let oldest_fresh = Utc::now() - self.max_quote_age;
        let fresh: Vec<Quote> = self
            .sources
            .iter()
            .filter_map(|polled| polled.latest.as_ref())
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
                Some(tick_of(consensus, slot))
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

impl Polled {
    /// Takes the outcome of a request: the quote, or the failure for the breaker and the log.
    fn record(&mut self, result: Result<Quote, FetchError>, rules: &BreakerRules) {
        let source = self.source;
        match result {
            Ok(quote) => {
                if self.breaker.on_success() == Some(Transition::Closed) {
                    tracing::info!(%source, "circuit breaker closed");
                }
                if let Some(kind) = self.failing.take() {
                    tracing::info!(%source, previous_failure = kind, "source recovered");
                }
                self.latest = Some(quote);
            }
            Err(error) => {
                let now = Instant::now();
                if let FetchError::RateLimited { retry_after, .. } = &error {
                    self.breaker.on_rate_limited(now, *retry_after, rules);
                } else if let Some(Transition::Opened { cooldown }) = self.breaker.on_failure(now, rules) {
                    tracing::warn!(%source, ?cooldown, "circuit breaker opened");
                }
                let first = self.failing.replace(error.kind()) != Some(error.kind());
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
}

/// The tick of `slot` from a round's consensus.
fn tick_of(consensus: Consensus, slot: DateTime<Utc>) -> Tick {
    let oldest_quote_time = consensus
        .quotes
        .iter()
        .filter(|(_, status)| *status == QuoteStatus::Used)
        .map(|(quote, _)| quote.effective_time())
        .min();
    Tick {
        schema_version: SCHEMA_VERSION,
        pair: names::PAIR.to_string(),
        time: slot,
        oldest_quote_time,
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
    }
}

/// Requests that outlive the round that started them, at most one per source.
pub struct InFlight<T> {
    tasks: JoinSet<T>,
    sources: HashMap<Id, Source>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        Self { tasks: JoinSet::new(), sources: HashMap::new() }
    }
}

impl<T: Send + 'static> InFlight<T> {
    pub fn contains(&self, source: Source) -> bool {
        self.sources.values().any(|s| *s == source)
    }

    /// Starts `request` for `source` in the background; false, and nothing started, if one is
    /// already in flight for it.
    pub fn start(&mut self, source: Source, request: impl Future<Output = T> + Send + 'static) -> bool {
        if self.contains(source) {
            return false;
        }
        let id = self.tasks.spawn(request).id();
        self.sources.insert(id, source);
        true
    }

    /// The requests that end by `deadline`, and those already ended: waits until none is left in
    /// flight or the deadline passes, whichever comes first. The others keep running.
    pub async fn until(&mut self, deadline: tokio::time::Instant) -> Vec<(Source, T)> {
        let mut ended = Vec::new();
        // A request that has already ended is taken even past the deadline: `timeout_at` polls
        // the future before the timer.
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
            match joined {
                Ok((id, value)) => ended.extend(self.sources.remove(&id).map(|source| (source, value))),
                Err(error) => {
                    let source = self.sources.remove(&error.id());
                    tracing::error!(?source, %error, "request task failed");
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, sleep, sleep_until};

    const MS: Duration = Duration::from_millis(1);

    async fn answer_after(delay: Duration, value: &'static str) -> &'static str {
        sleep(delay).await;
        value
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_waits_for_its_requests_until_the_deadline_and_no_longer() {
        let start = Instant::now();
        let mut in_flight = InFlight::default();
        assert!(in_flight.start(Source::Kraken, answer_after(100 * MS, "kraken")));
        assert!(in_flight.start(Source::Gemini, answer_after(1_500 * MS, "gemini")));

        // Round 1 (deadline 800 ms): Kraken's answer, then the wait ends at the deadline.
        assert_eq!(in_flight.until(start + 800 * MS).await, [(Source::Kraken, "kraken")]);
        assert_eq!(start.elapsed(), 800 * MS);
        assert!(in_flight.contains(Source::Gemini));
        assert!(!in_flight.start(Source::Gemini, answer_after(MS, "asked twice")), "asked while in flight");

        // Round 2 (from 1000 ms, deadline 1800 ms): Gemini's late answer comes at 1500 ms, and
        // with nothing else in flight the round stops waiting then.
        sleep_until(start + 1_000 * MS).await;
        assert!(in_flight.start(Source::Kraken, answer_after(100 * MS, "kraken again")));
        let ended = in_flight.until(start + 1_800 * MS).await;
        assert_eq!(ended, [(Source::Kraken, "kraken again"), (Source::Gemini, "gemini")]);
        assert_eq!(start.elapsed(), 1_500 * MS);
        assert!(!in_flight.contains(Source::Gemini));

        // Nothing in flight: no wait at all.
        assert_eq!(in_flight.until(start + 10_000 * MS).await, []);
        assert_eq!(start.elapsed(), 1_500 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_came_after_the_deadline_is_taken_by_the_next_round() {
        let start = Instant::now();
        let mut in_flight = InFlight::default();
        in_flight.start(Source::Bitfinex, answer_after(900 * MS, "bitfinex"));
        assert_eq!(in_flight.until(start + 800 * MS).await, []);
        // It ends at 900 ms, between the rounds; the next round finds it even with its own
        // deadline already past.
        sleep_until(start + 1_000 * MS).await;
        assert_eq!(in_flight.until(start + 800 * MS).await, [(Source::Bitfinex, "bitfinex")]);
        assert_eq!(start.elapsed(), 1_000 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_panics_frees_its_source() {
        let mut in_flight: InFlight<&'static str> = InFlight::default();
        in_flight.start(Source::Coinbase, async { panic!("adapter bug") });
        assert_eq!(in_flight.until(Instant::now() + 100 * MS).await, []);
        assert!(!in_flight.contains(Source::Coinbase));
        assert!(in_flight.start(Source::Coinbase, answer_after(MS, "coinbase")));
    }
}
