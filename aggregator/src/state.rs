//! What the aggregator holds in memory (the window and the newest tick) and how it is written to
//! KV: with compare-and-set on the key's revision, and never older than what is already there, so
//! two aggregators writing at once leave one monotone state.

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use btc_common::names::STATE_KEY;
use btc_common::{PriceState, SCHEMA_VERSION, Tick, WindowAverage};
use chrono::{DateTime, TimeZone, Utc};

use crate::error::AggregatorError;
use crate::window::{Applied, Window};

/// The window plus the newest tick and the last stream sequence applied.
pub struct Aggregate {
    window: Window,
    latest: Option<Tick>,
    applied_sequence: u64,
}

impl Aggregate {
    pub fn new(window: std::time::Duration) -> Self {
        Self { window: Window::new(window), latest: None, applied_sequence: 0 }
    }

    pub fn applied_sequence(&self) -> u64 {
        self.applied_sequence
    }

    pub fn newest_time_ms(&self) -> Option<i64> {
        self.window.newest_ms()
    }

    /// Ticks inside the window.
    pub fn samples(&self) -> u32 {
        self.window.averages().map_or(0, |a| a.samples)
    }

    /// Marks everything up to `sequence` as seen without applying it (ticks older than the window).
    pub fn skip_to(&mut self, sequence: u64) {
        self.applied_sequence = self.applied_sequence.max(sequence);
    }

    /// Applies the tick stored at stream `sequence`. A sequence already applied is ignored, so
    /// redelivery and replay overlap cannot count a tick twice.
    pub fn apply(&mut self, sequence: u64, tick: Tick) -> Option<Applied> {
        if sequence <= self.applied_sequence {
            return None;
        }
        self.applied_sequence = sequence;
        let outcome = self.window.apply(tick.time.timestamp_millis(), tick.price);
        if matches!(outcome, Applied::Appended) {
            self.latest = Some(tick);
        }
        Some(outcome)
    }

    /// The state to publish, once there is a tick.
    pub fn state(&self, window_seconds: u32) -> Option<PriceState> {
        let latest = self.latest.clone()?;
        let averages = self.window.averages()?;
        Some(PriceState {
            schema_version: SCHEMA_VERSION,
            latest,
            average: WindowAverage {
                window_seconds,
                time_weighted: averages.time_weighted,
                mean: averages.mean,
                samples: averages.samples,
                from: millis(averages.from_ms),
                to: millis(averages.to_ms),
                covered_seconds: (averages.to_ms - averages.from_ms) as f64 / 1000.0,
                complete: averages.complete,
            },
            stream_sequence: self.applied_sequence,
        })
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Whether a write changed the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored {
        revision: u64,
    },
    /// Another aggregator had already stored this sequence or a later one.
    AlreadyNewer,
}

/// Writes [`PriceState`] to the state bucket with compare-and-set.
pub struct StateWriter {
    kv: kv::Store,
    revision: Option<u64>,
}

impl StateWriter {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv, revision: None }
    }

    pub async fn write(&mut self, state: &PriceState) -> Result<Written, AggregatorError> {
        let value: bytes::Bytes = state.encode().into();
        loop {
            let Some(revision) = self.revision else {
                match self.current().await? {
                    None => match self.kv.create(STATE_KEY, value.clone()).await {
                        Ok(revision) => {
                            self.revision = Some(revision);
                            return Ok(Written::Stored { revision });
                        }
                        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                        Err(error) => return Err(AggregatorError::State(error.to_string())),
                    },
                    Some((revision, stored_sequence)) => {
                        self.revision = Some(revision);
                        if stored_sequence >= state.stream_sequence {
                            return Ok(Written::AlreadyNewer);
                        }
                        continue;
                    }
                }
            };
            match self.kv.update(STATE_KEY, value.clone(), revision).await {
                Ok(revision) => {
                    self.revision = Some(revision);
                    return Ok(Written::Stored { revision });
                }
                // Someone else wrote since our last write: re-read and decide again.
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => self.revision = None,
                Err(error) => return Err(AggregatorError::State(error.to_string())),
            }
        }
    }

    /// Revision and stream sequence of the stored state; `None` if there is none.
    async fn current(&self) -> Result<Option<(u64, u64)>, AggregatorError> {
        let entry = self.kv.entry(STATE_KEY).await.map_err(|e| AggregatorError::State(e.to_string()))?;
        Ok(entry.map(|entry| {
            let sequence = match entry.operation {
                Operation::Put => PriceState::decode(&entry.value).map(|s| s.stream_sequence).unwrap_or(0),
                Operation::Delete | Operation::Purge => 0,
            };
            (entry.revision, sequence)
        }))
    }
}
