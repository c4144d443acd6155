//! The setup step: creates the ticks stream, the state bucket and the publishers' lease bucket, or
//! brings them to this build's configuration, as a NATS user allowed to (the admin).
//!
//! One code path for every place that sets NATS up: `publisher setup` (the binary's subcommand),
//! which the chart runs as a Helm hook Job before every install and upgrade, `make run`, and the
//! tests. The services' own users may not create or change streams and buckets; they wait for it.

use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::backoff::Backoff;
use crate::duration::parse_duration;
use crate::error::RuntimeError;
use crate::jetstream::{
    WhenMissing, candle_streams, ensure_checkpoint_bucket, ensure_lease_bucket, ensure_state_bucket,
    ensure_ticks_stream,
};
use crate::nats::NatsArgs;
use crate::stream_config::StreamArgs;

/// The setup step's configuration: the admin's connection, and the settings of what it creates.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// The publishers' lease TTL: the lease bucket's `max_age` is raised to it, never lowered
    /// (a holder trusts its lease for the `max_age` it saw).
    #[arg(long, env = "LEASE_TTL", default_value = "3s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// Give up (exit 1) if NATS cannot be reached and set up within this long.
    #[arg(long = "setup-timeout", env = "SETUP_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Connects and sets up, retrying until it succeeds or `timeout` has passed.
pub async fn run(args: &SetupArgs) -> Result<(), RuntimeError> {
    let client = args.nats.connect("setup").await?;
    let js = jetstream::new(client.clone());
    let deadline = Instant::now() + args.timeout;
    let mut backoff = Backoff::NATS;
    let mut last_error = String::new();
    loop {
        match set_up(&js, args).await {
            Ok(()) => break,
            Err(error) => {
                let text = error.to_string();
                if text != last_error {
                    tracing::warn!(%error, "setup failed; retrying");
                }
                last_error = text;
            }
        }
        let delay = backoff.next_delay();
        if Instant::now() + delay > deadline {
            return Err(RuntimeError::SetupTimeout { timeout: args.timeout, last: last_error });
        }
        tokio::time::sleep(delay).await;
    }
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "could not flush NATS");
    }
    Ok(())
}

async fn set_up(js: &jetstream::Context, args: &SetupArgs) -> Result<(), RuntimeError> {
    let ticks = ensure_ticks_stream(js, &args.stream).await?;
    let state = ensure_state_bucket(js, &args.stream).await?;
    let lease = ensure_lease_bucket(js, args.lease_ttl, args.stream.replicas).await?;
    ensure_checkpoint_bucket(js, &args.stream).await?;
    candle_streams(js, &args.stream, WhenMissing::Create).await?;
    let ticks = ticks.cached_info();
    tracing::info!(
        stream = %ticks.config.name, max_age = ?ticks.config.max_age, max_bytes = ticks.config.max_bytes,
        replicas = ticks.config.num_replicas, state_bucket = %state.name, lease_max_age = ?lease.max_age,
        "NATS set up: the ticks stream, the candle streams, the state, lease and checkpoint buckets exist with this configuration"
    );
    Ok(())
}
