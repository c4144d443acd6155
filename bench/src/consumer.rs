//! The aggregator's durable pull consumer, bare: the settings (aggregator/src/follow.rs `pull`, the
//! `BATCH_SIZE` default of aggregator/src/config.rs) that the ceilings and floors read with.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{self, PullConsumer};
use btc_contract::Pair;

/// The durable consumer of `kv-relay`, the freshness floor's middle hop.
pub const RELAY: &str = "bench-relay";

const BATCH_SIZE: usize = 500;
const MAX_ACK_PENDING: i64 = 10_000;
const ACK_WAIT: Duration = Duration::from_secs(30);
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
const PULL_EXPIRES: Duration = Duration::from_secs(30);

/// A durable consumer named `name` with the aggregator's settings, filtered to `pairs` as it filters.
pub fn config(name: &str, pairs: &[Pair]) -> consumer::pull::Config {
    let mut config = consumer::pull::Config {
        durable_name: Some(name.to_string()),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    };
    // As the aggregator filters: one subject, or several.
    let subjects: Vec<String> = pairs.iter().map(Pair::ticks_subject).collect();
    match subjects.as_slice() {
        [one] => config.filter_subject = one.clone(),
        _ => config.filter_subjects = subjects,
    }
    config
}

/// The messages of `consumer`, pulled in batches as the aggregator pulls.
pub async fn pull(consumer: &PullConsumer) -> anyhow::Result<consumer::pull::Stream> {
    consumer
        .stream()
        .max_messages_per_batch(BATCH_SIZE)
        .heartbeat(PULL_HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .context("pulling from a bare consumer")
}
