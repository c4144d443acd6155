//! The aggregator's part, at a steady rate: each tick goes to the ticks stream, then a state
//! pointing at it to the KV bucket, as the aggregator writes them; when each state write was
//! issued is recorded, for the clients to measure their delivery from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream::kv;
use bench::stack::Nats;
use bench::ticks;
use btc_contract::Pair;

/// When the state of each tick sequence was written, nanoseconds after `epoch`; 0 for a tick not
/// measured (written before the clients were in).
pub struct WriteTimes {
    pub epoch: Instant,
    written_at: Vec<AtomicU64>,
}

impl WriteTimes {
    /// Room for sequences `0..=last_sequence`.
    pub fn new(last_sequence: u64) -> Self {
        let slots = usize::try_from(last_sequence + 1).unwrap_or_default();
        Self { epoch: Instant::now(), written_at: (0..slots).map(|_| AtomicU64::new(0)).collect() }
    }

    fn record(&self, sequence: u64) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        if let Some(slot) = usize::try_from(sequence).ok().and_then(|index| self.written_at.get(index)) {
            slot.store(nanos, Ordering::Release);
        }
    }

    /// Nanoseconds after `epoch` when the state of `sequence` was written, if it is measured.
    pub fn written_at(&self, sequence: u64) -> Option<u64> {
        let slot = self.written_at.get(usize::try_from(sequence).ok()?)?;
        Some(slot.load(Ordering::Acquire)).filter(|&nanos| nanos != 0)
    }
}

/// Writes BTC-USD's ticks and states.
pub struct Writer {
    js: async_nats::jetstream::Context,
    bucket: kv::Store,
    subject: String,
    index: u64,
    last_ms: i64,
}

impl Writer {
    pub async fn new(nats: &Nats) -> anyhow::Result<Self> {
        Ok(Self {
            js: nats.js.clone(),
            bucket: nats.state_bucket().await?,
            subject: Pair::seed().ticks_subject(),
            index: 0,
            last_ms: 0,
        })
    }

    /// Stores the next tick and the state that points at it; with `times`, records when the state
    /// write was issued. Returns the tick's sequence.
    pub async fn write(&mut self, times: Option<&Arc<WriteTimes>>) -> anyhow::Result<u64> {
        self.index += 1;
        self.last_ms = ticks::now_ms().max(self.last_ms + 1);
        let tick = ticks::tick_at(self.last_ms, self.index);
        let ack = self.js.publish(self.subject.clone(), tick.encode().into()).await.context("publishing a tick")?;
        let sequence = ack.await.context("the tick's publish ack")?.sequence;
        let state = testkit::prices::state(tick, sequence).encode();
        if let Some(times) = times {
            times.record(sequence);
        }
        self.bucket.put(Pair::seed().state_key(), state.into()).await.context("writing the state")?;
        Ok(sequence)
    }
}
