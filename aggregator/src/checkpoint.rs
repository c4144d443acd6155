//! A window checkpoint: everything one pair's aggregate holds as of a stream sequence, so that a
//! restart reads only the ticks stored after it instead of the whole window (60 000 ticks per
//! pair at 100 a second, which the server alone takes longer than a second to deliver).
//!
//! Exact: restoring a checkpoint and applying the ticks after it gives, bit for bit, what an
//! aggregate that never stopped holds (`replay`'s proptest checks it at every point). Optional: a
//! checkpoint that is missing, unreadable, of another format, pair, stream or window rules, or
//! older than what the stream still holds, is ignored and the window is replayed as before.
//!
//! Binary (postcard: integers as varints), with times, prices and sequences as differences from
//! the one before, so a full window of 100 ticks a second stays far under NATS's 1 MiB message
//! limit (about 0.5 MB). Internal to the aggregator: [`FORMAT`] changes whenever this layout, or
//! that of [`CandleBuilder`], does.

use serde::{Deserialize, Serialize};

use crate::candles::CandleBuilder;
use crate::error::AggregatorError;

/// The layout's version, the value's first varint.
pub const FORMAT: u32 = 1;

/// One pair's aggregate, as [`crate::state::Aggregate::checkpoint`] took it. Stored with the
/// lists as differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub pair: String,
    /// Creation time of the ticks stream, unix ns: the stream's identity.
    pub stream_created_ns: Option<i64>,
    /// Window, max hold and max clock skew, ms.
    pub rules_ms: [u64; 3],
    pub applied_sequence: u64,
    pub store_delay_ms: Option<i64>,
    /// The newest tick appended, as the stream stored it, with its sequence.
    pub newest: Option<(u64, Vec<u8>)>,
    pub candles: CandleBuilder,
    /// The window's retained ticks, oldest first: time (ms) and price (1e-8 USD).
    pub window: Vec<(i64, i128)>,
    /// `(sequence, time ms)` of the ticks that may still be in the window, in sequence order.
    pub held: Vec<(u64, i64)>,
}

impl Checkpoint {
    pub fn encode(&self) -> Result<Vec<u8>, AggregatorError> {
        let mut stored = self.clone();
        stored.window = differences(&self.window, |(t, p), (t0, p0)| (t.wrapping_sub(t0), p.wrapping_sub(p0)));
        stored.held = differences(&self.held, |(s, t), (s0, t0)| (s.wrapping_sub(s0), t.wrapping_sub(t0)));
        let mut bytes = postcard::to_stdvec(&FORMAT).map_err(failed)?;
        bytes.extend(postcard::to_stdvec(&stored).map_err(failed)?);
        Ok(bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, AggregatorError> {
        let (format, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(failed)?;
        if format != FORMAT {
            return Err(AggregatorError::Checkpoint(format!("format {format}, this build reads {FORMAT}")));
        }
        let mut checkpoint: Self = postcard::from_bytes(rest).map_err(failed)?;
        checkpoint.window = sums(&checkpoint.window, |(t0, p0), (t, p)| (t0.wrapping_add(t), p0.wrapping_add(p)));
        checkpoint.held = sums(&checkpoint.held, |(s0, t0), (s, t)| (s0.wrapping_add(s), t0.wrapping_add(t)));
        Ok(checkpoint)
    }
}

fn failed(error: postcard::Error) -> AggregatorError {
    AggregatorError::Checkpoint(error.to_string())
}

/// Each item minus the one before it (the first minus the default).
fn differences<T: Copy + Default>(items: &[T], minus: impl Fn(T, T) -> T) -> Vec<T> {
    let mut before = T::default();
    items
        .iter()
        .map(|&item| {
            let difference = minus(item, before);
            before = item;
            difference
        })
        .collect()
}

/// The running sums of `differences`: the items back.
fn sums<T: Copy + Default>(differences: &[T], plus: impl Fn(T, T) -> T) -> Vec<T> {
    let mut sum = T::default();
    differences
        .iter()
        .map(|&difference| {
            sum = plus(sum, difference);
            sum
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn checkpoint(window: Vec<(i64, i128)>, held: Vec<(u64, i64)>) -> Checkpoint {
        Checkpoint {
            pair: "BTC-USD".to_string(),
            stream_created_ns: Some(1_800_000_000_000_000_000),
            rules_ms: [600_000, 5_000, 60_000],
            applied_sequence: 42,
            store_delay_ms: Some(-3),
            newest: Some((41, b"{}".to_vec())),
            candles: CandleBuilder::new("BTC-USD", 5_000),
            window,
            held,
        }
    }

    proptest! {
        /// Whatever the values, including ones whose differences overflow.
        #[test]
        fn a_checkpoint_reads_back_as_it_was_written(
            window in prop::collection::vec(any::<(i64, i128)>(), 0..50),
            held in prop::collection::vec(any::<(u64, i64)>(), 0..50),
        ) {
            let written = checkpoint(window, held);
            prop_assert_eq!(Checkpoint::decode(&written.encode().expect("encodes")).expect("decodes"), written);
        }
    }

    #[test]
    fn a_full_window_of_100_ticks_a_second_fits_a_nats_message_with_room() {
        // Ten minutes at 10 ms, prices moving by a few dollars a tick: 480 KB.
        let window: Vec<(i64, i128)> = (0..60_000i64)
            .map(|i| (1_800_000_000_000 + i * 10, 9_000_000_000_000 + i128::from(i % 997) * 311_000_000))
            .collect();
        let held = (0..60_000u64).map(|i| (1 + 4 * i, 1_800_000_000_000 + i as i64 * 10)).collect();
        let bytes = checkpoint(window, held).encode().expect("encodes");
        assert!(bytes.len() < 600_000, "{} bytes", bytes.len());
    }

    #[test]
    fn another_format_or_a_cut_value_is_refused() {
        let mut bytes = checkpoint(vec![(1, 2)], vec![(3, 4)]).encode().expect("encodes");
        bytes.truncate(bytes.len() - 1);
        assert!(Checkpoint::decode(&bytes).is_err());
        let mut other = postcard::to_stdvec(&(FORMAT + 1)).expect("encodes");
        other.extend(&bytes[1..]);
        let error = Checkpoint::decode(&other).expect_err("another format");
        assert!(error.to_string().contains("format 2"), "{error}");
    }
}
