//! Idempotent JetStream setup: the ticks stream and the state bucket are created, or updated to
//! this build's configuration, by whichever service starts first.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, kv, stream};

use crate::backoff::Backoff;
use crate::duration::parse_duration;
use crate::error::CommonError;
use crate::names::{LEASE_BUCKET, STATE_BUCKET, TICKS_STREAM, TICKS_SUBJECTS};

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
    fn ticks_stream_config(&self) -> stream::Config {
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

    fn state_bucket_config(&self) -> kv::Config {
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

/// Creates the ticks stream, or brings an existing one to this configuration.
pub async fn ensure_ticks_stream(js: &jetstream::Context, args: &StreamArgs) -> Result<stream::Stream, CommonError> {
    let failed = |reason: String| CommonError::Stream { stream: TICKS_STREAM.to_string(), reason };
    js.create_or_update_stream(args.ticks_stream_config()).await.map_err(|e| failed(e.to_string()))?;
    js.get_stream(TICKS_STREAM).await.map_err(|e| failed(e.to_string()))
}

/// Creates the state bucket, or brings an existing one to this configuration.
pub async fn ensure_state_bucket(js: &jetstream::Context, args: &StreamArgs) -> Result<kv::Store, CommonError> {
    js.create_or_update_key_value(args.state_bucket_config())
        .await
        .map_err(|e| CommonError::Bucket { bucket: STATE_BUCKET.to_string(), reason: e.to_string() })
}

/// Opens the state bucket without creating it: for readers (the frontends), which may lack the
/// permission to create it; they wait until the aggregator has.
pub async fn open_state_bucket(js: &jetstream::Context) -> Result<kv::Store, CommonError> {
    js.get_key_value(STATE_BUCKET)
        .await
        .map_err(|e| CommonError::Bucket { bucket: STATE_BUCKET.to_string(), reason: e.to_string() })
}

/// The publishers' lease bucket, as [`ensure_lease_bucket`] found or made it.
#[derive(Debug, Clone)]
pub struct LeaseBucket {
    pub store: kv::Store,
    /// The bucket's `max_age`: the server removes a lease this long after its last write.
    pub max_age: Duration,
    /// When the bucket was created (unix ns): a new value means it was deleted and made again.
    pub created_ns: i64,
}

impl LeaseBucket {
    fn new(store: kv::Store, max_age: Duration) -> Self {
        let created_ns = store.stream.cached_info().created.timestamp_nanos_opt().unwrap_or_default();
        Self { store, max_age, created_ns }
    }
}

fn lease_bucket_config(ttl: Duration, replicas: usize) -> kv::Config {
    kv::Config {
        bucket: LEASE_BUCKET.to_string(),
        description: "The publisher replica that polls the exchanges; expires after the lease TTL".to_string(),
        history: 1,
        max_age: ttl,
        // Not memory: a lease lost in a NATS restart would let a standby take it while its holder
        // still trusts it.
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Creates the lease bucket with `max_age = ttl`, or opens it, raising a shorter `max_age` to `ttl`.
///
/// It never lowers `max_age`: a holder trusts its lease for the `max_age` it saw, so shortening it
/// under a running holder would let the server drop a lease its holder still polls under.
pub async fn ensure_lease_bucket(
    js: &jetstream::Context,
    ttl: Duration,
    replicas: usize,
) -> Result<LeaseBucket, CommonError> {
    let failed = |reason: String| CommonError::Bucket { bucket: LEASE_BUCKET.to_string(), reason };
    let config = lease_bucket_config(ttl, replicas);
    let existing = match js.get_stream(format!("KV_{LEASE_BUCKET}")).await {
        Ok(stream) => Some(stream.cached_info().config.max_age),
        Err(error) => match error.kind() {
            GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => None,
            _ => return Err(failed(error.to_string())),
        },
    };
    match existing {
        None => {
            let store = js.create_key_value(config).await.map_err(|e| failed(e.to_string()))?;
            Ok(LeaseBucket::new(store, ttl))
        }
        // Zero is "never expires": a dead holder would keep the lease for ever.
        Some(max_age) if max_age.is_zero() || max_age < ttl => {
            let store = js.update_key_value(config).await.map_err(|e| failed(e.to_string()))?;
            Ok(LeaseBucket::new(store, ttl))
        }
        Some(max_age) => {
            let store = js.get_key_value(LEASE_BUCKET).await.map_err(|e| failed(e.to_string()))?;
            Ok(LeaseBucket::new(store, max_age))
        }
    }
}

/// Runs a setup step until it succeeds or shutdown is requested, so a service started before NATS
/// waits for it instead of crashing. Returns `None` on shutdown.
pub async fn retry_until_ready<T, F, Fut>(
    what: &str,
    shutdown: &tokio_util::sync::CancellationToken,
    mut step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CommonError>>,
{
    let mut backoff = Backoff::NATS;
    loop {
        match step().await {
            Ok(value) => return Some(value),
            Err(error) => tracing::warn!(%error, "{what} not ready; retrying"),
        }
        if !backoff.wait(shutdown).await {
            return None;
        }
    }
}
