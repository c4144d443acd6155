//! `/liveness` and `/readiness`, served by both frontends.
//!
//! Liveness answers OK whenever the process can serve HTTP, whatever NATS and the exchanges do: a
//! liveness probe that followed a dependency would restart healthy pods during an outage.
//! Readiness says whether *this pod* can serve: bitcoin-api when it is connected to NATS and
//! watching the state, rest-api as soon as it listens; both fail while draining on shutdown. A
//! stale price ([`super::freshness`]) is shared by every replica, so it never fails readiness: that would empty the
//! Service and hand clients the ingress's HTML 503 instead of the app's JSON 503.

use std::sync::Arc;

use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::responses::Hardened;
use crate::cache::StateCache;

#[derive(Tags)]
enum ApiTags {
    /// Kubernetes probes.
    Health,
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// This pod can serve: `OK`.
    #[oai(status = 200)]
    Ready(PlainText<String>),
    /// Not ready; the text says why.
    #[oai(status = 503)]
    NotReady(PlainText<String>),
}

pub struct ProbesApi {
    cache: Arc<StateCache>,
    /// True for an app that serves the state (bitcoin-api): it is ready only while watching it.
    serves_state: bool,
}

impl ProbesApi {
    pub fn new(cache: Arc<StateCache>, serves_state: bool) -> Self {
        Self { cache, serves_state }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl ProbesApi {
    /// Liveness probe
    ///
    /// `OK` while the process can serve, independent of NATS and of the exchanges.
    #[oai(path = "/liveness", method = "get", operation_id = "liveness")]
    async fn liveness(&self) -> Hardened<PlainText<&'static str>> {
        Hardened(PlainText("OK"))
    }

    /// Readiness probe
    ///
    /// `OK` when this pod can serve: bitcoin-api once connected to NATS and watching the price
    /// state (a fresh price or not), rest-api once listening; neither while shutting down.
    #[oai(path = "/readiness", method = "get", operation_id = "readiness")]
    async fn readiness(&self) -> Hardened<ReadinessResponse> {
        Hardened(match readiness(&self.cache, self.serves_state) {
            Ok(()) => ReadinessResponse::Ready(PlainText("OK".to_string())),
            Err(reason) => ReadinessResponse::NotReady(PlainText(format!("NOT READY: {reason}"))),
        })
    }
}

/// Whether this pod can serve (`Err` with the reason if not): the same answer on the API port
/// and on the ops port.
pub fn readiness(cache: &StateCache, serves_state: bool) -> Result<(), String> {
    if cache.is_draining() {
        return Err("shutting down".to_string());
    }
    if serves_state {
        cache.state_readiness().map_err(str::to_string)?;
    }
    Ok(())
}
