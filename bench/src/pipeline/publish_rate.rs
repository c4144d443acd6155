//! Publish rate: the publisher's real publish path against a bare async-nats publisher, both with
//! one ack in flight (each tick waits for its JetStream ack before the next is sent).
//!
//! Both publish to the same fresh stream in alternating chunks, so a change in the machine's
//! background load during the measurement hits both alike.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, message::PublishMessage, publish::PublishAck};
use btc_contract::names::{TICK_SUBJECT, tick_msg_id};
use btc_contract::{Pair, Tick};
use publisher::metrics::PublisherMetrics;

use bench::stack::Nats;
use bench::ticks::{self, per_second};

/// The publisher's default `PUBLISH_TIMEOUT`.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(10);
/// Ticks each side publishes before the other takes its turn.
const CHUNK: usize = 500;

/// Ticks per second of each side.
pub struct PublishRates {
    pub publisher_path: f64,
    pub bare: f64,
}

/// `count` ticks through `publisher::publish::publish_tick` and `count` through the bare loop.
pub async fn measure(count: u64) -> anyhow::Result<PublishRates> {
    let nats = Nats::start(2 * count).await?;
    let metrics = PublisherMetrics::default();
    let (bare_ticks, publisher_ticks) = distinct_ticks(count);
    let (mut bare_time, mut publisher_time) = (Duration::ZERO, Duration::ZERO);
    for (bare_chunk, publisher_chunk) in bare_ticks.chunks(CHUNK).zip(publisher_ticks.chunks(CHUNK)) {
        let started = Instant::now();
        for tick in bare_chunk {
            check_stored(tick, publish_bare(&nats.js, tick).await?)?;
        }
        bare_time += started.elapsed();
        let started = Instant::now();
        for tick in publisher_chunk {
            let ack = publisher::publish::publish_tick(
                &nats.js,
                &Default::default(),
                &Pair::seed(),
                tick,
                GIVE_UP_AFTER,
                &metrics,
            )
            .await
            .context("the publisher path gave a tick up")?;
            check_stored(tick, ack)?;
        }
        publisher_time += started.elapsed();
    }
    Ok(PublishRates { publisher_path: per_second(count, publisher_time), bare: per_second(count, bare_time) })
}

/// Two sets of `count` ticks 1 ms apart, ending now, with distinct times (so distinct
/// `Nats-Msg-Id`s) across both sets.
fn distinct_ticks(count: u64) -> (Vec<Tick>, Vec<Tick>) {
    let first_ms = ticks::now_ms() - 2 * count as i64;
    let mut all = (0..2 * count).map(|index| ticks::tick_at(first_ms + index as i64, index));
    let bare = all.by_ref().take(count as usize).collect();
    (bare, all.collect())
}

/// The ceiling: encode the tick, JetStream publish with its `Nats-Msg-Id`, await the ack.
pub async fn publish_bare(js: &jetstream::Context, tick: &Tick) -> anyhow::Result<PublishAck> {
    let message = PublishMessage::build()
        .message_id(tick_msg_id(&Pair::seed(), tick.time.timestamp_millis()))
        .payload(tick.encode().into());
    let ack = js.send_publish(TICK_SUBJECT, message).await.context("publishing a tick")?;
    ack.await.context("waiting for a publish ack")
}

fn check_stored(tick: &Tick, ack: PublishAck) -> anyhow::Result<()> {
    if ack.duplicate {
        bail!("tick {} was stored as a duplicate", tick.time);
    }
    Ok(())
}
