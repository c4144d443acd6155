//! Publishing a tick: JetStream publish with a `Nats-Msg-Id` from the round's slot, waiting for the
//! ack, and retrying with the same id so that a lost ack never stores the tick twice.

use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use btc_common::{Tick, names};

/// Publishes `tick` until JetStream acknowledges it or `give_up_after` passes.
pub async fn publish_tick(js: &jetstream::Context, tick: &Tick, give_up_after: Duration) -> Option<PublishAck> {
    let msg_id = names::tick_msg_id(tick.time.timestamp_millis());
    let payload: bytes::Bytes = tick.encode().into();
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let publish = PublishMessage::build().message_id(msg_id.as_str()).payload(payload.clone());
        let result = match js.send_publish(names::TICK_SUBJECT, publish).await {
            Ok(ack) => await_ack(ack).await,
            Err(error) => Err(error.to_string()),
        };
        match result {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(%msg_id, seq = ack.sequence, "tick already stored (another publisher or a retry)");
                } else {
                    tracing::debug!(%msg_id, seq = ack.sequence, price = tick.price, "tick stored");
                }
                return Some(ack);
            }
            Err(error) => {
                if tokio::time::Instant::now() + delay >= deadline {
                    tracing::error!(%msg_id, attempt, %error, "tick not acknowledged; giving it up");
                    return None;
                }
                tracing::warn!(%msg_id, attempt, %error, retry_in = ?delay, "tick not acknowledged; retrying with the same id");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn await_ack(ack: PublishAckFuture) -> Result<PublishAck, String> {
    ack.await.map_err(|error| error.to_string())
}
