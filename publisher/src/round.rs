//! The round: start the due feeds' requests concurrently (a feed is one source's pair), wait for
//! them until the round's deadline, keep each feed's latest quote, and turn each pair's fresh
//! quotes into at most one tick for that pair.
//!
//! A request still running at the deadline goes on in the background, and its quote is used by a
//! later round while it is fresh, so one slow exchange does not hold every round back. A feed
//! with a request in flight is not asked again until it ends (a rate limit counts requests, not
//! rounds), and an exchange is sent at most one request per round: its pairs take turns (see
//! [`crate::pairs::feeds`]), never a burst. Logs once per change of state, never once per round,
//! so an outage of one exchange is one warning per pair, not a flood.

mod feed;
mod in_flight;
mod pair_round;

use std::sync::Arc;
use std::time::{Duration, Instant};

use btc_contract::{Pair, Tick};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::breaker::{BreakerRules, BreakerState};
use crate::config::PublisherConfig;
use crate::consensus::ConsensusRules;
use crate::exchanges::Source;
use crate::fetch::{FetchError, Fetcher};
use crate::metrics::PublisherMetrics;
use crate::quote::Quote;
use feed::Polled;
pub use in_flight::InFlight;
use pair_round::PairRound;

/// Everything the publisher remembers between rounds.
pub struct Rounds {
    feeds: Vec<Polled>,
    pairs: Vec<PairRound>,
    fetcher: Fetcher,
    consensus: ConsensusRules,
    breaker_rules: BreakerRules,
    max_quote_age: Duration,
    /// How long after its slot's start a round waits for its requests.
    round_deadline: Duration,
    /// Keyed by the feed's index in `feeds`.
    in_flight: InFlight<usize, Result<Quote, FetchError>>,
    metrics: Arc<PublisherMetrics>,
}

impl Rounds {
    pub fn new(config: &PublisherConfig, fetcher: Fetcher, metrics: Arc<PublisherMetrics>) -> Self {
        let started = Instant::now();
        let pairs = config.pairs();
        let feeds = crate::pairs::feeds(&config.endpoints(), &pairs);
        Self {
            feeds: feeds.into_iter().map(|feed| Polled::new(feed, started)).collect(),
            pairs: pairs.into_iter().map(PairRound::new).collect(),
            fetcher,
            consensus: config.consensus_rules(),
            breaker_rules: config.breaker_rules(),
            max_quote_age: config.max_quote_age,
            round_deadline: config.round_deadline(),
            in_flight: InFlight::default(),
            metrics,
        }
    }

    /// Runs the round of the slot starting at `slot` and returns its ticks: one per pair that has
    /// a quorum, in `PAIRS` order. Returns once every request in flight has ended, or at the
    /// round's deadline.
    pub async fn run(&mut self, slot: DateTime<Utc>) -> Vec<(Pair, Tick)> {
        let left = (slot + self.round_deadline - Utc::now()).to_std().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + left;
        self.start_due_requests();
        for (index, result) in self.in_flight.until(deadline).await {
            self.record(index, result);
        }
        let oldest_fresh = Utc::now() - self.max_quote_age;
        let mut ticks = Vec::new();
        for pair_round in &mut self.pairs {
            let fresh: Vec<Quote> = self
                .feeds
                .iter()
                .filter(|polled| polled.feed.pair == pair_round.pair)
                .filter_map(|polled| polled.latest.as_ref())
                .filter(|quote| quote.effective_time() >= oldest_fresh)
                .cloned()
                .collect();
            if let Some(tick) = pair_round.tick(&fresh, slot, self.consensus, &self.metrics) {
                ticks.push((pair_round.pair.clone(), tick));
            }
        }
        ticks
    }

    /// Starts a request to every feed that is due and has none in flight, at most one per
    /// exchange. Each request counts its own outcome in the metrics when it ends, in whichever
    /// round that is; its span is a child of the round that started it.
    fn start_due_requests(&mut self) {
        let now = Instant::now();
        let mut asked: Vec<Source> = Vec::new();
        for (index, polled) in self.feeds.iter_mut().enumerate() {
            // Checked first: `is_due` moves an expired breaker to half-open, which is the trial
            // request's to do.
            if asked.contains(&polled.feed.source) || self.in_flight.contains(&index) || !polled.breaker.is_due(now) {
                continue;
            }
            asked.push(polled.feed.source);
            polled.breaker.record_request(now);
            let request = polled.request(self.fetcher.clone(), self.metrics.clone());
            self.in_flight.start(index, request.in_current_span());
        }
    }

    /// Takes the outcome of feed `index`'s request.
    fn record(&mut self, index: usize, result: Result<Quote, FetchError>) {
        let Some(polled) = self.feeds.get_mut(index) else {
            return;
        };
        let rate_limited = match &result {
            Err(FetchError::RateLimited { retry_after, .. }) => Some(*retry_after),
            _ => None,
        };
        polled.record(result, &self.breaker_rules);
        let open = matches!(polled.breaker.state(), BreakerState::Open { .. });
        let labels = [polled.feed.source.name(), polled.feed.pair.as_str()];
        self.metrics.circuit_open.with_label_values(&labels).set(i64::from(open));
        // An exchange's limit is per IP, shared by all its pairs: each of them waits too.
        if let Some(retry_after) = rate_limited {
            let (source, now) = (polled.feed.source, Instant::now());
            for other in self.feeds.iter_mut().filter(|other| other.feed.source == source) {
                other.breaker.on_rate_limited(now, retry_after, &self.breaker_rules);
            }
        }
    }
}
