//! The settings of the ticks stream and the state bucket (retention, replication), read from the
//! environment by every service and by the setup step, so they all ask JetStream for the same thing.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use btc_contract::names::{STATE_BUCKET, TICKS_STREAM, TICKS_SUBJECTS};

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
    /// Replicas of the stream and the bucket: 1 on one server, 3 on a cluster.
    #[arg(long = "nats-replicas", env = "NATS_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

impl Default for StreamArgs {
    fn default() -> Self {
        Self {
            ticks_max_age: Duration::from_secs(24 * 3600),
            ticks_max_bytes: 1 << 30,
            ticks_duplicate_window: Duration::from_secs(120),
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
}
