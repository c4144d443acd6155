//! Publishing closed candles to their interval's stream: a JetStream publish with a `Nats-Msg-Id`
//! from the pair, the interval and its start, awaiting the ack, retried until it lands. A replay,
//! a retry or a second aggregator therefore stores each candle once (the candle streams remember
//! ids for a day, see `btc_runtime::stream_config`).

use async_nats::jetstream::{self, message::PublishMessage};
use btc_contract::names::candle_msg_id;
use btc_contract::{Candle, Pair};
use btc_runtime::backoff::Backoff;
use btc_runtime::jetstream::Provision;
use tokio_util::sync::CancellationToken;

use crate::error::AggregatorError;
use crate::metrics::AggregatorMetrics;

/// Publishes candles, and sets the candle streams up again when a publish finds one gone.
pub struct CandlePublisher {
    js: jetstream::Context,
    provision: Provision,
}

impl CandlePublisher {
    pub fn new(js: jetstream::Context, provision: Provision) -> Self {
        Self { js, provision }
    }

    /// Publishes `candle`; true if the stream already held it (a duplicate id).
    async fn publish(&self, candle: &Candle) -> Result<bool, AggregatorError> {
        let failed = |error: String| AggregatorError::Candles(error);
        let pair: Pair = candle.pair.parse().map_err(|e: btc_contract::PairError| failed(e.to_string()))?;
        let id = candle_msg_id(&pair, candle.interval, candle.start.timestamp_millis());
        let message = PublishMessage::build().message_id(id).payload(candle.encode().into());
        let ack = self.js.send_publish(pair.candles_subject(candle.interval), message).await;
        let ack = ack.map_err(|e| failed(e.to_string()))?.await.map_err(|e| failed(e.to_string()))?;
        Ok(ack.duplicate)
    }

    /// Publishes `candles` in order until each has landed or shutdown is requested; after a
    /// failure the candle streams are set up again (created where this user may). True once all
    /// are stored.
    pub async fn publish_all(
        &self,
        candles: &[Candle],
        shutdown: &CancellationToken,
        metrics: &AggregatorMetrics,
    ) -> bool {
        for candle in candles {
            let mut backoff = Backoff::NATS;
            loop {
                match self.publish(candle).await {
                    Ok(duplicate) => {
                        metrics.count_candle(candle.interval, if duplicate { "duplicate" } else { "stored" });
                        break;
                    }
                    Err(error) => {
                        metrics.count_candle(candle.interval, "failed");
                        tracing::warn!(%error, pair = %candle.pair, interval = %candle.interval, start = %candle.start, "candle not stored; retrying");
                        if !backoff.wait(shutdown).await {
                            return false;
                        }
                        if let Err(error) = self.provision.candle_streams(&self.js).await {
                            tracing::debug!(%error, "candle streams not ready");
                        }
                    }
                }
            }
        }
        true
    }
}
