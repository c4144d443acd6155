//! A quote from one exchange: its [`Price`], where it came from and when.

use chrono::{DateTime, Utc};

use crate::exchanges::Source;
use crate::price::Price;

/// One exchange's answer for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub source: Source,
    pub price: Price,
    /// The exchange's own time for this price, where its API gives one.
    pub quote_time: Option<DateTime<Utc>>,
    /// When the answer arrived.
    pub received_at: DateTime<Utc>,
}

impl Quote {
    /// The time the price is known to be from: the venue's time, but never later than its arrival
    /// (a venue clock running ahead must not make a quote look fresher than it is).
    pub fn effective_time(&self) -> DateTime<Utc> {
        match self.quote_time {
            Some(time) if time < self.received_at => time,
            _ => self.received_at,
        }
    }
}
