//! Requests that outlive the round that started them: a round waits for them until its deadline,
//! and a later round takes the answers that came after it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// Requests that outlive the round that started them, at most one per key (a feed: one source's
/// pair).
pub struct InFlight<K, T> {
    tasks: JoinSet<T>,
    keys: HashMap<Id, K>,
}

impl<K, T> Default for InFlight<K, T> {
    fn default() -> Self {
        Self { tasks: JoinSet::new(), keys: HashMap::new() }
    }
}

impl<K: PartialEq + fmt::Debug, T: Send + 'static> InFlight<K, T> {
    pub fn contains(&self, key: &K) -> bool {
        self.keys.values().any(|k| k == key)
    }

    /// Starts `request` for `key` in the background; false, and nothing started, if one is
    /// already in flight for it.
    pub fn start(&mut self, key: K, request: impl Future<Output = T> + Send + 'static) -> bool {
        if self.contains(&key) {
            return false;
        }
        let id = self.tasks.spawn(request).id();
        self.keys.insert(id, key);
        true
    }

    /// The requests that end by `deadline`, and those already ended: waits until none is left in
    /// flight or the deadline passes, whichever comes first. The others keep running.
    pub async fn until(&mut self, deadline: tokio::time::Instant) -> Vec<(K, T)> {
        let mut ended = Vec::new();
        // A request that has already ended is taken even past the deadline: `timeout_at` polls
        // the future before the timer.
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
            match joined {
                Ok((id, value)) => ended.extend(self.keys.remove(&id).map(|key| (key, value))),
                Err(error) => {
                    let key = self.keys.remove(&error.id());
                    tracing::error!(?key, %error, "request task failed");
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::exchanges::Source;
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
        assert!(in_flight.contains(&Source::Gemini));
        assert!(!in_flight.start(Source::Gemini, answer_after(MS, "asked twice")), "asked while in flight");

        // Round 2 (from 1000 ms, deadline 1800 ms): Gemini's late answer comes at 1500 ms, and
        // with nothing else in flight the round stops waiting then.
        sleep_until(start + 1_000 * MS).await;
        assert!(in_flight.start(Source::Kraken, answer_after(100 * MS, "kraken again")));
        let ended = in_flight.until(start + 1_800 * MS).await;
        assert_eq!(ended, [(Source::Kraken, "kraken again"), (Source::Gemini, "gemini")]);
        assert_eq!(start.elapsed(), 1_500 * MS);
        assert!(!in_flight.contains(&Source::Gemini));

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
        let mut in_flight: InFlight<Source, &'static str> = InFlight::default();
        in_flight.start(Source::Coinbase, async { panic!("adapter bug") });
        assert_eq!(in_flight.until(Instant::now() + 100 * MS).await, []);
        assert!(!in_flight.contains(&Source::Coinbase));
        assert!(in_flight.start(Source::Coinbase, answer_after(MS, "coinbase")));
    }
}
