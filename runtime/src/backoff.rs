//! One backoff for every retry loop: wait `first`, then twice as long each time, up to `max`.
//!
//! The cap says how quickly a service notices that a dependency is back, so each use names its
//! reason in a constant here rather than a number at the loop:
//! - [`Backoff::NATS`] (2 s): retries of NATS requests and the client's reconnects. A retry is
//!   one cheap request, and 2 s keeps recovery within seconds of NATS coming back.
//! - [`Backoff::PUBLISH`] (1 s): the retries of one tick, within `PUBLISH_TIMEOUT`. A round is
//!   1 s by default, so a tick is retried at least once per round while the next ones queue up.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Retries of NATS requests (setup, pulls, state writes): 100 ms doubling to 2 s.
    pub const NATS: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    /// Retries of one tick's publish: 50 ms doubling to 1 s (one round at the default interval).
    pub const PUBLISH: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// The delay before the next attempt; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// The delay before retry number `retry` (0 for the first), for callers that count attempts
    /// themselves (the NATS client's reconnect callback).
    pub fn nth_delay(&self, retry: u32) -> Duration {
        self.first.saturating_mul(1 << retry.min(20)).min(self.max)
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps the next delay; false if `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let delays: Vec<u128> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
        let counted: Vec<u128> = (0..5).map(|n| backoff.nth_delay(n).as_millis()).collect();
        assert_eq!(counted, [100, 200, 400, 700, 700]);
        assert_eq!(backoff.nth_delay(u32::MAX), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_returns_false_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut backoff = Backoff::NATS;
        assert!(backoff.wait(&shutdown).await);
        shutdown.cancel();
        assert!(!backoff.wait(&shutdown).await);
    }
}
