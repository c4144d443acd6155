//! One backoff for every retry loop: wait `first`, then twice as long each time, up to `max`.
//!
//! The caps say how quickly a service notices that a dependency is back. Loops that talk to NATS
//! use [`Backoff::NATS`]: a retry every 2 s at most once NATS has been gone for a while is cheap
//! (one request) and keeps recovery within seconds of the cause going away.

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

    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// The delay before the next attempt; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
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
