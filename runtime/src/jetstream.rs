//! The ticks stream and the KV buckets: their configuration, and how each service gets them.
//!
//! Who creates them depends on the service's credentials ([`WhenMissing`]). In the chart the
//! services have users of their own that may not create or change any stream or bucket: the setup
//! step (`setup::run`, the chart's hook Job) creates and updates them as the NATS admin, and a
//! service waits while one is missing. A service connected without credentials (a bare local run
//! against `nats-server -js`) creates what is missing itself, or brings it to this build's
//! configuration, whichever service starts first.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, kv, stream};

use crate::backoff::Backoff;
use crate::error::RuntimeError;
use crate::stream_config::StreamArgs;
use btc_contract::Interval;
use btc_contract::names::{CHECKPOINT_BUCKET, LEASE_BUCKET, STATE_BUCKET, TICKS_STREAM};

/// What a service does when a stream or bucket it needs does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenMissing {
    /// Create it, or bring it to this build's configuration: a client without credentials.
    #[default]
    Create,
    /// Only open it, and report it [`RuntimeError::Missing`] until the setup step has made it: a
    /// service with its own user, which may not create or change anything.
    Wait,
}

/// The names [`RuntimeError::Missing`] gives what a service waits for.
pub const TICKS_STREAM_WHAT: &str = "the ticks stream PRICES";
pub const STATE_BUCKET_WHAT: &str = "the state bucket price_state";
pub const CHECKPOINT_BUCKET_WHAT: &str = "the checkpoint bucket window_checkpoint";
pub const LEASE_BUCKET_WHAT: &str = "the lease bucket publisher_lease";
pub const CANDLES_STREAMS_WHAT: &str = "the candle streams CANDLES_1M..CANDLES_1D";

/// How a service gets its streams and buckets ([`WhenMissing`], and their settings for when it
/// creates them), and what it is waiting for the setup step to create meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Provision {
    pub args: StreamArgs,
    pub when_missing: WhenMissing,
    /// Shared by the clones: the service's readiness reads it.
    missing: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Provision {
    pub fn new(args: StreamArgs, when_missing: WhenMissing) -> Self {
        Self { args, when_missing, missing: Arc::default() }
    }

    pub async fn ticks_stream(&self, js: &jetstream::Context) -> Result<stream::Stream, RuntimeError> {
        self.noted(TICKS_STREAM_WHAT, ticks_stream(js, &self.args, self.when_missing).await)
    }

    pub async fn state_bucket(&self, js: &jetstream::Context) -> Result<kv::Store, RuntimeError> {
        self.noted(STATE_BUCKET_WHAT, state_bucket(js, &self.args, self.when_missing).await)
    }

    /// The aggregator's checkpoint bucket. Not noted as missing: a service runs without
    /// checkpoints (its restarts replay the window) rather than wait for them.
    pub async fn checkpoint_bucket(&self, js: &jetstream::Context) -> Result<kv::Store, RuntimeError> {
        match self.when_missing {
            WhenMissing::Create => ensure_checkpoint_bucket(js, &self.args).await,
            WhenMissing::Wait => {
                open_stream(js, &format!("KV_{CHECKPOINT_BUCKET}"), CHECKPOINT_BUCKET_WHAT).await?;
                js.get_key_value(CHECKPOINT_BUCKET).await.map_err(|e| checkpoint_bucket_failed(e.to_string()))
            }
        }
    }

    /// The closed-candle streams, one per interval, in [`Interval::ALL`]'s order.
    pub async fn candle_streams(&self, js: &jetstream::Context) -> Result<Vec<stream::Stream>, RuntimeError> {
        self.noted(CANDLES_STREAMS_WHAT, candle_streams(js, &self.args, self.when_missing).await)
    }

    pub async fn lease_bucket(&self, js: &jetstream::Context, ttl: Duration) -> Result<LeaseBucket, RuntimeError> {
        self.noted(LEASE_BUCKET_WHAT, lease_bucket(js, ttl, self.args.replicas, self.when_missing).await)
    }

    /// Records whether `what` is missing (a publish found the stream gone, or stored again).
    pub fn set_missing(&self, what: &'static str, missing: bool) {
        let mut set = self.missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if missing {
            set.insert(what);
        } else {
            set.remove(what);
        }
    }

    pub fn is_missing(&self, what: &'static str) -> bool {
        self.missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(what)
    }

    /// What the service waits for the setup step to create, if anything: it is not ready then.
    pub fn missing(&self) -> Option<String> {
        let set = self.missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (!set.is_empty()).then(|| {
            let names: Vec<&str> = set.iter().copied().collect();
            format!("waiting for the setup step to create {}", names.join(" and "))
        })
    }

    fn noted<T>(&self, what: &'static str, result: Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        match &result {
            Ok(_) => self.set_missing(what, false),
            Err(RuntimeError::Missing { .. }) => self.set_missing(what, true),
            Err(_) => {}
        }
        result
    }
}

/// The ticks stream, created or updated ([`WhenMissing::Create`]) or only opened.
pub async fn ticks_stream(
    js: &jetstream::Context,
    args: &StreamArgs,
    when_missing: WhenMissing,
) -> Result<stream::Stream, RuntimeError> {
    match when_missing {
        WhenMissing::Create => ensure_ticks_stream(js, args).await,
        WhenMissing::Wait => open_stream(js, TICKS_STREAM, TICKS_STREAM_WHAT).await,
    }
}

/// The candle streams, created or updated ([`WhenMissing::Create`]) or only opened.
pub async fn candle_streams(
    js: &jetstream::Context,
    args: &StreamArgs,
    when_missing: WhenMissing,
) -> Result<Vec<stream::Stream>, RuntimeError> {
    let mut streams = Vec::with_capacity(Interval::ALL.len());
    for interval in Interval::ALL {
        streams.push(match when_missing {
            WhenMissing::Create => ensure_candles_stream(js, args, interval).await?,
            WhenMissing::Wait => open_stream(js, interval.stream(), CANDLES_STREAMS_WHAT).await?,
        });
    }
    Ok(streams)
}

/// Creates `interval`'s candle stream, or brings an existing one to this configuration.
pub async fn ensure_candles_stream(
    js: &jetstream::Context,
    args: &StreamArgs,
    interval: Interval,
) -> Result<stream::Stream, RuntimeError> {
    let failed = |reason: String| RuntimeError::Stream { stream: interval.stream().to_string(), reason };
    js.create_or_update_stream(args.candles_stream_config(interval)).await.map_err(|e| failed(e.to_string()))?;
    js.get_stream(interval.stream()).await.map_err(|e| failed(e.to_string()))
}

/// The state bucket, created or updated ([`WhenMissing::Create`]) or only opened.
pub async fn state_bucket(
    js: &jetstream::Context,
    args: &StreamArgs,
    when_missing: WhenMissing,
) -> Result<kv::Store, RuntimeError> {
    match when_missing {
        WhenMissing::Create => ensure_state_bucket(js, args).await,
        WhenMissing::Wait => open_state_bucket(js).await,
    }
}

/// The stream `name`, or [`RuntimeError::Missing`] naming it as `what` if it does not exist.
async fn open_stream(js: &jetstream::Context, name: &str, what: &str) -> Result<stream::Stream, RuntimeError> {
    js.get_stream(name).await.map_err(|error| match error.kind() {
        GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => {
            RuntimeError::Missing { what: what.to_string() }
        }
        _ => RuntimeError::Stream { stream: name.to_string(), reason: error.to_string() },
    })
}

/// Creates the ticks stream, or brings an existing one to this configuration.
pub async fn ensure_ticks_stream(js: &jetstream::Context, args: &StreamArgs) -> Result<stream::Stream, RuntimeError> {
    let failed = |reason: String| RuntimeError::Stream { stream: TICKS_STREAM.to_string(), reason };
    js.create_or_update_stream(args.ticks_stream_config()).await.map_err(|e| failed(e.to_string()))?;
    js.get_stream(TICKS_STREAM).await.map_err(|e| failed(e.to_string()))
}

/// Creates the state bucket, or brings an existing one to this configuration.
pub async fn ensure_state_bucket(js: &jetstream::Context, args: &StreamArgs) -> Result<kv::Store, RuntimeError> {
    js.create_or_update_key_value(args.state_bucket_config())
        .await
        .map_err(|e| RuntimeError::Bucket { bucket: STATE_BUCKET.to_string(), reason: e.to_string() })
}

/// Opens the state bucket without creating it ([`RuntimeError::Missing`] while it does not exist):
/// for readers (the frontends), which never create it, and for services that may not.
pub async fn open_state_bucket(js: &jetstream::Context) -> Result<kv::Store, RuntimeError> {
    open_stream(js, &format!("KV_{STATE_BUCKET}"), STATE_BUCKET_WHAT).await?;
    js.get_key_value(STATE_BUCKET)
        .await
        .map_err(|e| RuntimeError::Bucket { bucket: STATE_BUCKET.to_string(), reason: e.to_string() })
}

/// Creates the checkpoint bucket, or brings an existing one to this configuration.
pub async fn ensure_checkpoint_bucket(js: &jetstream::Context, args: &StreamArgs) -> Result<kv::Store, RuntimeError> {
    js.create_or_update_key_value(args.checkpoint_bucket_config())
        .await
        .map_err(|e| checkpoint_bucket_failed(e.to_string()))
}

fn checkpoint_bucket_failed(reason: String) -> RuntimeError {
    RuntimeError::Bucket { bucket: CHECKPOINT_BUCKET.to_string(), reason }
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
) -> Result<LeaseBucket, RuntimeError> {
    let failed = |reason: String| RuntimeError::Bucket { bucket: LEASE_BUCKET.to_string(), reason };
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

/// The lease bucket: created, or its `max_age` raised to `ttl` ([`WhenMissing::Create`]), or only
/// opened as the setup step made it.
pub async fn lease_bucket(
    js: &jetstream::Context,
    ttl: Duration,
    replicas: usize,
    when_missing: WhenMissing,
) -> Result<LeaseBucket, RuntimeError> {
    if when_missing == WhenMissing::Create {
        return ensure_lease_bucket(js, ttl, replicas).await;
    }
    let stream = open_stream(js, &format!("KV_{LEASE_BUCKET}"), LEASE_BUCKET_WHAT).await?;
    let max_age = stream.cached_info().config.max_age;
    let store = js
        .get_key_value(LEASE_BUCKET)
        .await
        .map_err(|e| RuntimeError::Bucket { bucket: LEASE_BUCKET.to_string(), reason: e.to_string() })?;
    if max_age.is_zero() || max_age < ttl {
        tracing::warn!(
            ?max_age, lease_ttl = ?ttl,
            "the lease bucket's max_age is below LEASE_TTL (or none): run the setup step with this LEASE_TTL"
        );
    }
    // No server expiry at all: the holder's own TTL is all there is to go by.
    Ok(LeaseBucket::new(store, if max_age.is_zero() { ttl } else { max_age }))
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
    Fut: std::future::Future<Output = Result<T, RuntimeError>>,
{
    let mut backoff = Backoff::NATS;
    // Logged when it changes, not on every retry: a service waiting for the setup step for an
    // hour would otherwise log the same line 1,800 times.
    let mut last_error: Option<String> = None;
    loop {
        match step().await {
            Ok(value) => {
                if last_error.is_some() {
                    tracing::info!("{what} ready");
                }
                return Some(value);
            }
            Err(error) => {
                let text = error.to_string();
                if last_error.as_deref() == Some(text.as_str()) {
                    tracing::debug!(%error, "{what} still not ready");
                } else {
                    tracing::warn!(%error, "{what} not ready; retrying");
                }
                last_error = Some(text);
            }
        }
        if !backoff.wait(shutdown).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_missing_until_it_is_found() {
        let provision = Provision::new(StreamArgs::default(), WhenMissing::Wait);
        let shared = provision.clone();
        assert_eq!(provision.missing(), None);
        let missing: Result<(), _> = Err(RuntimeError::Missing { what: TICKS_STREAM_WHAT.into() });
        assert!(provision.noted(TICKS_STREAM_WHAT, missing).is_err());
        shared.set_missing(LEASE_BUCKET_WHAT, true);
        assert_eq!(
            provision.missing().as_deref(),
            Some("waiting for the setup step to create the lease bucket publisher_lease and the ticks stream PRICES")
        );
        // Another failure (NATS away) says nothing about the stream's existence.
        let other: Result<(), _> = Err(RuntimeError::Stream { stream: "PRICES".into(), reason: "timed out".into() });
        let _ = provision.noted(TICKS_STREAM_WHAT, other);
        assert!(shared.is_missing(TICKS_STREAM_WHAT));
        let _ = provision.noted(TICKS_STREAM_WHAT, Ok(()));
        shared.set_missing(LEASE_BUCKET_WHAT, false);
        assert_eq!(shared.missing(), None);
    }
}
