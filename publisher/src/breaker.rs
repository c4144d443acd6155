//! Per-source politeness and failure handling: the minimum interval between requests, backoff
//! after 429 / `Retry-After`, and a circuit breaker. Pure state machine over `Instant`s.
//!
//! Breaker: `failures_to_open` consecutive failures open it for a cooldown; after the cooldown one
//! trial request is let through (half-open); success closes it, failure re-opens it with twice the
//! cooldown (capped). A rate-limit signal (a 429, or an exchange's own inside a 200) is not a fault
//! of the source, so it only delays the next request and leaves the breaker alone.

use std::time::{Duration, Instant};

/// Breaker and backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerRules {
    pub failures_to_open: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// Wait after a rate-limit signal that names no wait (`RATE_LIMIT_BACKOFF`): a 429 without a
    /// usable `Retry-After`, or an exchange's own "too many requests" inside a 200.
    pub rate_limit_backoff: Duration,
}

impl Default for BreakerRules {
    fn default() -> Self {
        Self {
            failures_to_open: 3,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(300),
            rate_limit_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant, cooldown: Duration },
    HalfOpen { cooldown: Duration },
}

/// A change worth one log line and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cooldown: Duration },
    Closed,
}

/// When one source may be asked next: its pacing, its rate-limit backoff and its breaker.
#[derive(Debug, Clone)]
pub struct SourceBreaker {
    min_interval: Duration,
    last_request: Option<Instant>,
    backoff_until: Option<Instant>,
    consecutive_failures: u32,
    state: BreakerState,
}

impl SourceBreaker {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_request: None,
            backoff_until: None,
            consecutive_failures: 0,
            state: BreakerState::Closed,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// True if a request may be sent now; moves an expired open breaker to half-open.
    pub fn is_due(&mut self, now: Instant) -> bool {
        if self.last_request.is_some_and(|last| now.duration_since(last) < self.min_interval) {
            return false;
        }
        if self.backoff_until.is_some_and(|until| now < until) {
            return false;
        }
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen { .. } => true,
            BreakerState::Open { until, cooldown } => {
                if now >= until {
                    self.state = BreakerState::HalfOpen { cooldown };
                    true
                } else {
                    false
                }
            }
        }
    }

    /// No request before `until` (a feed's turn among its exchange's pairs); a later wait that is
    /// already set stays.
    pub fn hold_until(&mut self, until: Instant) {
        self.backoff_until = Some(self.backoff_until.map_or(until, |at| at.max(until)));
    }

    pub fn record_request(&mut self, now: Instant) {
        self.last_request = Some(now);
    }

    pub fn on_success(&mut self) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.backoff_until = None;
        match std::mem::replace(&mut self.state, BreakerState::Closed) {
            BreakerState::Closed => None,
            _ => Some(Transition::Closed),
        }
    }

    pub fn on_failure(&mut self, now: Instant, rules: &BreakerRules) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let cooldown = match self.state {
            BreakerState::HalfOpen { cooldown } => (cooldown * 2).min(rules.max_cooldown),
            BreakerState::Closed if self.consecutive_failures >= rules.failures_to_open => rules.cooldown,
            _ => return None,
        };
        self.state = BreakerState::Open { until: now + cooldown, cooldown };
        Some(Transition::Opened { cooldown })
    }

    pub fn on_rate_limited(&mut self, now: Instant, retry_after: Option<Duration>, rules: &BreakerRules) {
        let wait = retry_after.unwrap_or(rules.rate_limit_backoff).min(rules.max_cooldown);
        self.backoff_until = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn respects_the_minimum_interval() {
        let start = Instant::now();
        let mut breaker = SourceBreaker::new(SECOND);
        assert!(breaker.is_due(start));
        breaker.record_request(start);
        assert!(!breaker.is_due(start + Duration::from_millis(999)));
        assert!(breaker.is_due(start + SECOND));
    }

    #[test]
    fn a_hold_delays_the_first_request() {
        let start = Instant::now();
        let mut breaker = SourceBreaker::new(SECOND);
        breaker.hold_until(start + 2 * SECOND);
        assert!(!breaker.is_due(start + Duration::from_millis(1_999)));
        assert!(breaker.is_due(start + 2 * SECOND));
    }

    #[test]
    fn honours_retry_after_without_opening_the_breaker() {
        let rules = BreakerRules::default();
        let start = Instant::now();
        let mut breaker = SourceBreaker::new(SECOND);
        breaker.record_request(start);
        breaker.on_rate_limited(start, Some(Duration::from_secs(7)), &rules);
        assert!(!breaker.is_due(start + Duration::from_secs(6)));
        assert!(breaker.is_due(start + Duration::from_secs(7)));
        assert_eq!(breaker.state(), BreakerState::Closed);
        // Without Retry-After the default backoff applies.
        breaker.on_rate_limited(start, None, &rules);
        assert!(!breaker.is_due(start + Duration::from_secs(29)));
        assert!(breaker.is_due(start + Duration::from_secs(30)));
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let rules = BreakerRules { failures_to_open: 3, cooldown: 10 * SECOND, ..BreakerRules::default() };
        let start = Instant::now();
        let mut breaker = SourceBreaker::new(SECOND);
        assert_eq!(breaker.on_failure(start, &rules), None);
        assert_eq!(breaker.on_failure(start, &rules), None);
        assert_eq!(breaker.on_failure(start, &rules), Some(Transition::Opened { cooldown: 10 * SECOND }));
        assert!(!breaker.is_due(start + 9 * SECOND));
        assert!(breaker.is_due(start + 10 * SECOND));
        assert_eq!(breaker.state(), BreakerState::HalfOpen { cooldown: 10 * SECOND });
        assert_eq!(breaker.on_success(), Some(Transition::Closed));
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.on_success(), None);
    }

    #[test]
    fn a_failed_trial_reopens_with_a_longer_capped_cooldown() {
        let rules = BreakerRules {
            failures_to_open: 1,
            cooldown: 100 * SECOND,
            max_cooldown: 300 * SECOND,
            ..Default::default()
        };
        let start = Instant::now();
        let mut breaker = SourceBreaker::new(SECOND);
        breaker.on_failure(start, &rules);
        let mut now = start + 100 * SECOND;
        assert!(breaker.is_due(now));
        assert_eq!(breaker.on_failure(now, &rules), Some(Transition::Opened { cooldown: 200 * SECOND }));
        now += 200 * SECOND;
        assert!(breaker.is_due(now));
        assert_eq!(breaker.on_failure(now, &rules), Some(Transition::Opened { cooldown: 300 * SECOND }));
    }
}
