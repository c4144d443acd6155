//! The settings of the ticks stream and the state bucket (retention, replication), read from the
//! environment by every service and by the setup step, so they all ask JetStream for the same thing.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use btc_contract::Interval;
use btc_contract::names::{CHECKPOINT_BUCKET, STATE_BUCKET, TICKS_STREAM, TICKS_SUBJECTS};

use crate::duration::parse_duration;

/// Retention and replication of the ticks stream and the state bucket.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// How long ticks stay in the stream.
    #[arg(long, env = "TICKS_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub ticks_max_age: Duration,
    /// Upper bound on the stream's size in bytes; the oldest ticks go first.
    #[arg(long, env = "TICKS_MAX_BYTES", default_value_t = 1 << 30)]
    pub ticks_max_bytes: i64,
    /// Window in which JetStream drops a tick whose Nats-Msg-Id it has already stored.
    #[arg(long, env = "TICKS_DUPLICATE_WINDOW", default_value = "2m", value_parser = parse_duration)]
    pub ticks_duplicate_window: Duration,
    /// How long closed 1-minute candles stay in their stream (0: forever).
    #[arg(long, env = "CANDLES_1M_MAX_AGE", default_value = "7d", value_parser = parse_duration)]
    pub candles_1m_max_age: Duration,
    /// How long closed 5-minute candles stay in their stream (0: forever).
    #[arg(long, env = "CANDLES_5M_MAX_AGE", default_value = "30d", value_parser = parse_duration)]
    pub candles_5m_max_age: Duration,
    /// How long closed 1-hour candles stay in their stream (0: forever).
    #[arg(long, env = "CANDLES_1H_MAX_AGE", default_value = "365d", value_parser = parse_duration)]
    pub candles_1h_max_age: Duration,
    /// How long closed 1-day candles stay in their stream (0: forever).
    #[arg(long, env = "CANDLES_1D_MAX_AGE", default_value = "0s", value_parser = parse_duration)]
    pub candles_1d_max_age: Duration,
    /// Replicas of the streams and the bucket: 1 on one server, 3 on a cluster.
    #[arg(long = "nats-replicas", env = "NATS_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

/// How long JetStream remembers a candle's Nats-Msg-Id: a replica replaying or lagging up to a
/// day behind (the ticks stream's default retention) stores no candle twice.
const CANDLES_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Default for StreamArgs {
    fn default() -> Self {
        Self {
            ticks_max_age: Duration::from_secs(24 * 3600),
            ticks_max_bytes: 1 << 30,
            ticks_duplicate_window: Duration::from_secs(120),
            candles_1m_max_age: Duration::from_secs(7 * 86_400),
            candles_5m_max_age: Duration::from_secs(30 * 86_400),
            candles_1h_max_age: Duration::from_secs(365 * 86_400),
            candles_1d_max_age: Duration::ZERO,
            replicas: 1,
        }
    }
}

impl StreamArgs {
    pub(crate) fn ticks_stream_config(&self) -> stream::Config {
        stream::Config {
            name: TICKS_STREAM.to_string(),
            description: Some("BTC price ticks from the publisher (one per round)".to_string()),
            subjects: vec![TICKS_SUBJECTS.to_string()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.ticks_max_age,
            max_bytes: self.ticks_max_bytes,
            // JetStream refuses a duplicate window longer than max_age (error 10052).
            duplicate_window: self.ticks_duplicate_window.min(self.ticks_max_age),
            num_replicas: self.replicas,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// Retention of `interval`'s candles (zero: forever).
    pub fn candles_max_age(&self, interval: Interval) -> Duration {
        match interval {
            Interval::OneMinute => self.candles_1m_max_age,
            Interval::FiveMinutes => self.candles_5m_max_age,
            Interval::OneHour => self.candles_1h_max_age,
            Interval::OneDay => self.candles_1d_max_age,
        }
    }

    pub(crate) fn candles_stream_config(&self, interval: Interval) -> stream::Config {
        let max_age = self.candles_max_age(interval);
        stream::Config {
            name: interval.stream().to_string(),
            description: Some(format!("Closed {interval} candles of every pair, from the aggregator")),
            subjects: vec![interval.stream_subjects()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age,
            // JetStream refuses a duplicate window longer than a non-zero max_age (error 10052).
            duplicate_window: if max_age.is_zero() {
                CANDLES_DUPLICATE_WINDOW
            } else {
                CANDLES_DUPLICATE_WINDOW.min(max_age)
            },
            num_replicas: self.replicas,
            allow_direct: true,
            ..Default::default()
        }
    }

    pub(crate) fn state_bucket_config(&self) -> kv::Config {
        kv::Config {
            bucket: STATE_BUCKET.to_string(),
            description: "Latest BTC tick and rolling average, written by the aggregator".to_string(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// Values up to NATS's default 1 MiB payload: a window of 100 ticks a second for 10 minutes
    /// encodes to about 0.5 MB (see `aggregator::checkpoint`); a larger one is not written.
    pub(crate) fn checkpoint_bucket_config(&self) -> kv::Config {
        kv::Config {
            bucket: CHECKPOINT_BUCKET.to_string(),
            description: "The aggregator's window checkpoints: where a restart resumes from".to_string(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}
