//! Publishing a tick: JetStream publish with a `Nats-Msg-Id` from the round's slot, waiting for the
//! ack, and retrying with the same id so that a lost ack never stores the tick twice.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use btc_contract::{Pair, Tick, names};
use btc_runtime::backoff::Backoff;
use btc_runtime::jetstream::{Provision, TICKS_STREAM_WHAT, WhenMissing};
use tracing::Instrument;

use crate::metrics::PublisherMetrics;

/// Publishes `tick` until JetStream acknowledges it or `give_up_after` passes, in a producer span
/// whose W3C context travels in the message headers to the aggregator.
pub async fn publish_tick(
    js: &jetstream::Context,
    provision: &Provision,
    pair: &Pair,
    tick: &Tick,
    give_up_after: Duration,
    metrics: &PublisherMetrics,
) -> Option<PublishAck> {
    let msg_id = names::tick_msg_id(pair, tick.time.timestamp_millis());
    let subject = pair.ticks_subject();
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("send {subject}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "nats",
        messaging.operation.r#type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = %subject,
        messaging.message.id = %msg_id,
        messaging.nats.stream = names::TICKS_STREAM,
        messaging.nats.stream_sequence = tracing::field::Empty,
        messaging.nats.duplicate = tracing::field::Empty,
    );
    let mut headers = async_nats::HeaderMap::new();
    btc_runtime::trace_context::inject(&span, &mut headers);
    let target = Target { subject: &subject, msg_id: &msg_id };
    let result = publish_with_retries(js, provision, tick, target, headers, give_up_after, metrics)
        .instrument(span.clone())
        .await;
    match &result {
        Some(ack) => {
            span.record("messaging.nats.stream_sequence", ack.sequence);
            span.record("messaging.nats.duplicate", ack.duplicate);
            let result = if ack.duplicate { "duplicate" } else { "acked" };
            metrics.ticks.with_label_values(&[pair.as_str(), result]).inc();
            let newest = metrics.last_tick_timestamp.with_label_values(&[pair.as_str()]);
            newest.set(newest.get().max(tick.time.timestamp_millis() as f64 / 1000.0));
        }
        None => {
            span.record("otel.status_code", "ERROR");
            metrics.ticks.with_label_values(&[pair.as_str(), "failed"]).inc();
        }
    }
    result
}

/// Where a tick goes: its pair's subject, under its de-duplication id.
#[derive(Clone, Copy)]
struct Target<'a> {
    subject: &'a str,
    msg_id: &'a str,
}

async fn publish_with_retries(
    js: &jetstream::Context,
    provision: &Provision,
    tick: &Tick,
    Target { subject, msg_id }: Target<'_>,
    headers: async_nats::HeaderMap,
    give_up_after: Duration,
    metrics: &PublisherMetrics,
) -> Option<PublishAck> {
    let payload: bytes::Bytes = tick.encode().into();
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut backoff = Backoff::PUBLISH;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        metrics.publish_attempts.inc();
        // The trace headers first: `headers()` replaces the map, `message_id` adds to it.
        let publish = PublishMessage::build().headers(headers.clone()).message_id(msg_id).payload(payload.clone());
        let result = match js.send_publish(subject.to_string(), publish).await {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match result {
            Ok(ack) => {
                provision.set_missing(TICKS_STREAM_WHAT, false);
                if ack.duplicate {
                    tracing::debug!(%msg_id, seq = ack.sequence, "tick already stored (another publisher or a retry)");
                } else {
                    tracing::debug!(%msg_id, seq = ack.sequence, price = tick.price, "tick stored");
                }
                return Some(ack);
            }
            Err(error) => {
                // Waiting for the setup step is logged once, not for every attempt of every tick.
                let waiting = error.kind() == PublishErrorKind::StreamNotFound && stream_gone(js, provision).await;
                let delay = backoff.next_delay();
                if tokio::time::Instant::now() + delay >= deadline {
                    if waiting {
                        tracing::debug!(%msg_id, attempt, %error, "tick not acknowledged; giving it up");
                    } else {
                        tracing::error!(%msg_id, attempt, %error, "tick not acknowledged; giving it up");
                    }
                    return None;
                }
                if waiting {
                    tracing::debug!(%msg_id, attempt, %error, retry_in = ?delay, "tick not acknowledged; retrying");
                } else {
                    tracing::warn!(%msg_id, attempt, %error, retry_in = ?delay, "tick not acknowledged; retrying with the same id");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The stream was deleted under us: create it again rather than fail every round until someone
/// does (the aggregator would too); or, as a user that may not, wait for the setup step (readiness
/// says so meanwhile). True while waiting.
async fn stream_gone(js: &jetstream::Context, provision: &Provision) -> bool {
    let already_waiting = provision.is_missing(TICKS_STREAM_WHAT);
    match provision.ticks_stream(js).await {
        Ok(_) if provision.when_missing == WhenMissing::Create => {
            tracing::warn!("the ticks stream was gone; created it again");
            false
        }
        Ok(_) => false,
        Err(error) if provision.when_missing == WhenMissing::Wait => {
            if !already_waiting {
                tracing::warn!(%error, "the ticks stream is gone: ticks are given up until it exists again");
            }
            true
        }
        Err(error) => {
            tracing::warn!(%error, "the ticks stream is gone and cannot be created");
            false
        }
    }
}
