//! The freshness floor's middle hop for `make bench`, in its own process as the aggregator is: a
//! durable pull consumer with the aggregator's settings on one pair's ticks, each tick's bytes put
//! under the pair's state key, then the tick acked (the aggregator writes a state before it acks).
//! Nothing else: no decoding, no window, no compare-and-set.
//!
//! Usage: kv-relay (NATS_URL from the environment, as the services read it)

use anyhow::{Context as _, anyhow};
use async_nats::jetstream::consumer::PullConsumer;
use btc_contract::Pair;
use btc_contract::names::TICKS_STREAM;
use btc_runtime::nats::NatsArgs;
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").context("NATS_URL")?;
    let client = NatsArgs::local(url).connect("kv-relay").await.context("connecting to nats-server")?;
    let js = async_nats::jetstream::new(client);
    let bucket = btc_runtime::jetstream::open_state_bucket(&js).await.context("opening the state bucket")?;
    let pair = Pair::seed();
    let stream = js.get_stream(TICKS_STREAM).await.context("opening the ticks stream")?;
    let consumer: PullConsumer = stream
        .create_consumer(bench::consumer::config(bench::consumer::RELAY, std::slice::from_ref(&pair)))
        .await
        .context("creating the relay's consumer")?;
    let mut messages = bench::consumer::pull(&consumer).await?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|error| anyhow!("pulling a tick: {error}"))?;
        bucket.put(pair.state_key(), message.payload.clone()).await.context("putting a state")?;
        message.ack().await.map_err(|error| anyhow!("acking a tick: {error}"))?;
    }
    Ok(())
}
