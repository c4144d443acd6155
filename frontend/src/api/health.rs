//! `/liveness` and `/readiness`, served by both frontends.
//!
//! Liveness answers OK whenever the process can serve HTTP, whatever NATS and the exchanges do: a
//! liveness probe that followed a dependency would restart healthy pods during an outage.
//! Readiness answers OK only with a NATS connection and a fresh price, so an ingress sends no
//! traffic to a replica that would answer 503.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use crate::cache::StateCache;

#[derive(Tags)]
enum ApiTags {
    /// Kubernetes probes.
    Health,
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// Connected to NATS and the newest price is fresh: `OK`.
    #[oai(status = 200)]
    Ready(PlainText<String>),
    /// Not ready; the text says why.
    #[oai(status = 503)]
    NotReady(PlainText<String>),
}

pub struct HealthApi {
    cache: Arc<StateCache>,
    stale_after: Duration,
}

impl HealthApi {
    pub fn new(cache: Arc<StateCache>, stale_after: Duration) -> Self {
        Self { cache, stale_after }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness probe
    ///
    /// `OK` while the process can serve, independent of NATS and of the exchanges.
    #[oai(path = "/liveness", method = "get", operation_id = "liveness")]
    async fn liveness(&self) -> PlainText<&'static str> {
        PlainText("OK")
    }

    /// Readiness probe
    ///
    /// `OK` only when connected to NATS and the newest price is fresh.
    #[oai(path = "/readiness", method = "get", operation_id = "readiness")]
    async fn readiness(&self) -> ReadinessResponse {
        if self.cache.is_draining() {
            return ReadinessResponse::NotReady(PlainText("NOT READY: shutting down".to_string()));
        }
        if !self.cache.nats_connected() {
            return ReadinessResponse::NotReady(PlainText("NOT READY: not connected to NATS".to_string()));
        }
        let Some(state) = self.cache.get() else {
            return ReadinessResponse::NotReady(PlainText("NOT READY: no price yet".to_string()));
        };
        let age = (Utc::now() - state.state.latest.time).to_std().unwrap_or_default();
        if age > self.stale_after {
            return ReadinessResponse::NotReady(PlainText(format!(
                "NOT READY: newest price is {} s old",
                age.as_secs()
            )));
        }
        ReadinessResponse::Ready(PlainText("OK".to_string()))
    }
}
