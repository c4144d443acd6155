//! Assembles each app (API, spec, Swagger UI, JSON errors) and serves it with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};
use tokio_util::sync::CancellationToken;

use crate::api::{self, bitcoin::BitcoinApi, errors::json_errors, health::HealthApi, rest::RestApi};
use crate::cache::{self, StateCache};
use crate::config::FrontendConfig;
use crate::error::FrontendError;

/// How long in-flight requests may take to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The two frontends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    BitcoinApi,
    RestApi,
}

impl App {
    pub fn name(self) -> &'static str {
        match self {
            App::BitcoinApi => "bitcoin-api",
            App::RestApi => "rest-api",
        }
    }

    pub fn default_listen_addr(self) -> SocketAddr {
        match self {
            App::BitcoinApi => SocketAddr::from(([0, 0, 0, 0], 8080)),
            App::RestApi => SocketAddr::from(([0, 0, 0, 0], 8081)),
        }
    }
}

/// The app's HTTP endpoint over `cache`: its API, `/openapi.json`, `/openapi.yaml`, `/docs`.
pub fn endpoint(app: App, cache: Arc<StateCache>, stale_after: Duration) -> BoxEndpoint<'static> {
    let health = HealthApi::new(cache.clone(), stale_after);
    match app {
        App::BitcoinApi => with_docs(app, (BitcoinApi::new(cache, stale_after), health)),
        App::RestApi => with_docs(app, (RestApi, health)),
    }
}

fn with_docs<T: OpenApi + 'static>(app: App, apis: T) -> BoxEndpoint<'static> {
    let service = OpenApiService::new(apis, format!("{} ({})", api::TITLE, app.name()), env!("CARGO_PKG_VERSION"))
        .description(api::DESCRIPTION);
    Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest("/docs", service.swagger_ui())
        .nest("/", service)
        .around(json_errors)
        .boxed()
}

/// A frontend that is listening.
pub struct Running {
    /// The address it listens on (the real port when started on port 0).
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Waits until the server has stopped (after shutdown and the drain).
    pub async fn wait(self) -> Result<(), FrontendError> {
        match self.server.await {
            Ok(result) => result.map_err(FrontendError::Serve),
            Err(join) => Err(FrontendError::Serve(std::io::Error::other(join))),
        }
    }
}

/// Connects to NATS (in the background), starts watching the state, binds and starts serving.
pub async fn start(app: App, config: FrontendConfig, shutdown: CancellationToken) -> Result<Running, FrontendError> {
    let client = config.nats.connect(app.name()).await?;
    let cache = Arc::new(StateCache::new(Some(client.clone())));
    tokio::spawn(cache::watch_state(client, cache.clone(), shutdown.clone()));

    let listen = config.listen_addr.unwrap_or_else(|| app.default_listen_addr());
    let acceptor = TcpListener::bind(listen)
        .into_acceptor()
        .await
        .map_err(|source| FrontendError::Bind { addr: listen, source })?;
    let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(listen);
    tracing::info!(app = app.name(), %addr, "listening");

    let app_endpoint = endpoint(app, cache, config.stale_after);
    let server = tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app_endpoint, shutdown.cancelled_owned(), Some(DRAIN_TIMEOUT))
            .await
    });
    Ok(Running { addr, server })
}

/// Runs `app` until shutdown.
pub async fn run(app: App, config: FrontendConfig, shutdown: CancellationToken) -> Result<(), FrontendError> {
    start(app, config, shutdown).await?.wait().await?;
    tracing::info!(app = app.name(), "stopped");
    Ok(())
}
