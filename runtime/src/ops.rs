//! The small HTTP port of every service: `/metrics`, `/liveness`, `/readiness` (Kubernetes probes
//! and Prometheus scrapes need them even where there is no API; the frontends keep `/metrics` off
//! their public port).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Response, Route, get};
use tokio_util::sync::CancellationToken;

use crate::jetstream::Provision;

/// What a service exposes on its ops port.
pub trait OpsState: Send + Sync + 'static {
    /// `Ok` when the service can do its work; `Err(reason)` otherwise.
    fn readiness(&self) -> Result<(), String>;
    /// The metrics in the Prometheus text format (refresh point-in-time gauges first).
    fn metrics(&self) -> String;
}

/// A service's metrics, rendered with the NATS connection it reports on.
pub trait ServiceMetrics: Send + Sync + 'static {
    /// Prometheus text, with point-in-time gauges refreshed first.
    fn render(&self, client: &async_nats::Client) -> String;
}

/// The ops state of a worker service (publisher, aggregator): ready once connected to NATS and its
/// own start-up step (`waiting_for`) is done.
pub struct WorkerOps<M> {
    pub metrics: Arc<M>,
    client: async_nats::Client,
    started: AtomicBool,
    waiting_for: &'static str,
    /// Streams and buckets the service waits for the setup step to create.
    provision: Provision,
}

impl<M: ServiceMetrics> WorkerOps<M> {
    pub fn new(metrics: Arc<M>, client: async_nats::Client, waiting_for: &'static str, provision: Provision) -> Self {
        Self { metrics, client, started: AtomicBool::new(false), waiting_for, provision }
    }

    /// The start-up step is done.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }
}

impl<M: ServiceMetrics> OpsState for WorkerOps<M> {
    fn readiness(&self) -> Result<(), String> {
        if !crate::nats::is_connected(&self.client) {
            return Err("not connected to NATS".into());
        }
        if let Some(missing) = self.provision.missing() {
            return Err(missing);
        }
        if !self.started.load(Ordering::Relaxed) {
            return Err(self.waiting_for.into());
        }
        Ok(())
    }

    fn metrics(&self) -> String {
        self.metrics.render(&self.client)
    }
}

fn readiness(state: &dyn OpsState) -> Response {
    match state.readiness() {
        Ok(()) => Response::builder().content_type("text/plain; charset=utf-8").body("OK"),
        Err(reason) => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .body(format!("NOT READY: {reason}")),
    }
}

fn metrics(state: &dyn OpsState) -> Response {
    Response::builder().content_type(crate::metrics::CONTENT_TYPE).body(state.metrics())
}

/// Binds `addr` and serves the ops endpoints until `shutdown`. Returns the bound address, which
/// the service logs in its one `listening` line (tests start services on port 0 and read it).
pub async fn serve(
    addr: SocketAddr,
    state: Arc<dyn OpsState>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let bound = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(addr);
    let (for_readiness, for_metrics) = (state.clone(), state);
    let app = Route::new()
        .at("/liveness", get(make_sync(|_| "OK")))
        .at("/readiness", get(make_sync(move |_| readiness(&*for_readiness))))
        .at("/metrics", get(make_sync(move |_| metrics(&*for_metrics))));
    let task = tokio::spawn(async move {
        let served = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), Some(Duration::from_secs(5)))
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "ops HTTP server failed");
        }
    });
    Ok((bound, task))
}
