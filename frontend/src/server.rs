//! Assembles each app (API, spec, Swagger UI, JSON errors) and serves it with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::OpenTelemetryTracing;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route, get};
use poem_openapi::{OpenApi, OpenApiService};
use tokio_util::sync::CancellationToken;

use crate::api::{self, bitcoin::BitcoinApi, health::HealthApi, rest::RestApi};
use crate::cache::{self, StateCache};
use crate::config::FrontendConfig;
use crate::error::FrontendError;
use crate::frontline::Frontline;
use crate::hardening::{self, Limits};
use crate::idle::IdleTimeoutAcceptor;
use crate::metrics::FrontendMetrics;

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

    /// True for the app that serves the price state (and so needs NATS).
    pub fn serves_state(self) -> bool {
        self == App::BitcoinApi
    }

    /// Routes of the app, for the metrics' bounded `route` label.
    fn routes(self) -> &'static [&'static str] {
        const COMMON: [&str; 5] = ["/readiness", "/liveness", "/metrics", "/openapi.json", "/openapi.yaml"];
        match self {
            App::BitcoinApi => &["/btc/USD", "/btc/average", COMMON[0], COMMON[1], COMMON[2], COMMON[3], COMMON[4]],
            App::RestApi => &["/", COMMON[0], COMMON[1], COMMON[2], COMMON[3], COMMON[4]],
        }
    }
}

/// The app's HTTP endpoint over `cache`: its API, `/metrics`, `/openapi.json`, `/openapi.yaml`,
/// `/docs`, with JSON errors, request metrics and (when tracing is on) a server span per request.
pub fn endpoint(app: App, cache: Arc<StateCache>, stale_after: Duration) -> BoxEndpoint<'static> {
    endpoint_with(app, cache, stale_after, Limits::default())
}

/// [`endpoint`] with explicit HTTP limits.
pub fn endpoint_with(app: App, cache: Arc<StateCache>, stale_after: Duration, limits: Limits) -> BoxEndpoint<'static> {
    let health = HealthApi::new(cache.clone(), app.serves_state());
    let metrics = Arc::new(FrontendMetrics::new(app.name(), app.routes(), app.serves_state()));
    let (api, docs) = match app {
        App::BitcoinApi => api_and_docs(app, (BitcoinApi::new(cache.clone(), stale_after), health)),
        App::RestApi => api_and_docs(app, (RestApi, health)),
    };
    let for_scrape = metrics.clone();
    let extras = docs.at(
        "/metrics",
        get(make_sync(move |_| {
            Response::builder().content_type(btc_common::metrics::CONTENT_TYPE).body(for_scrape.render(&cache))
        })),
    );
    let cors = hardening::cors(&limits);
    let routes = Dispatch { api, extras }.with_if(cors.is_some(), cors.unwrap_or_default());
    let tracer = btc_common::telemetry::tracing_requested().then(|| opentelemetry::global::tracer(app.name()));
    Frontline::new(routes, limits, metrics, tracer.is_some())
        .with_if(
            tracer.is_some(),
            OpenTelemetryTracing::new(tracer.unwrap_or_else(|| opentelemetry::global::tracer("off"))),
        )
        .boxed()
}

/// The app's API, and the routes of its spec and Swagger UI.
fn api_and_docs<T: OpenApi + 'static>(app: App, apis: T) -> (BoxEndpoint<'static>, Route) {
    let service = OpenApiService::new(apis, format!("{} ({})", api::TITLE, app.name()), env!("CARGO_PKG_VERSION"))
        .description(api::DESCRIPTION);
    let docs = Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest("/docs", service.swagger_ui());
    (service.into_endpoint(), docs)
}

/// Sends the spec, Swagger UI and metrics paths to `extras` and every other request straight to
/// the API: nesting the API under `/` in one router would rebuild each request's URI.
struct Dispatch {
    api: BoxEndpoint<'static>,
    extras: Route,
}

impl Endpoint for Dispatch {
    type Output = Response;

    async fn call(&self, request: poem::Request) -> poem::Result<Response> {
        let path = request.uri().path();
        if matches!(path, "/metrics" | "/openapi.json" | "/openapi.yaml" | "/docs") || path.starts_with("/docs/") {
            self.extras.call(request).await
        } else {
            self.api.call(request).await
        }
    }
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

/// Connects to NATS (in the background) and starts watching the state if the app serves it,
/// binds and starts serving. rest-api needs no NATS at all.
///
/// On `shutdown`: readiness fails at once, requests are still served for `shutdown_delay` (the
/// time a load balancer needs to notice), then the server stops accepting and gives in-flight
/// requests up to [`DRAIN_TIMEOUT`].
pub async fn start(app: App, config: FrontendConfig, shutdown: CancellationToken) -> Result<Running, FrontendError> {
    let stop_serving = CancellationToken::new();
    let cache = if app.serves_state() {
        let client = config.nats.connect(app.name()).await?;
        let cache = Arc::new(StateCache::new(Some(client.clone())));
        tokio::spawn(cache::watch_state(client, cache.clone(), stop_serving.clone()));
        cache
    } else {
        Arc::new(StateCache::new(None))
    };
    tokio::spawn({
        let (cache, stop_serving, delay) = (cache.clone(), stop_serving.clone(), config.shutdown_delay);
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stop_serving.cancelled() => return,
            }
            cache.start_draining();
            tracing::info!(?delay, "shutting down: readiness fails, still serving during the delay");
            tokio::time::sleep(delay).await;
            stop_serving.cancel();
        }
    });

    let listen = config.listen_addr.unwrap_or_else(|| app.default_listen_addr());
    let acceptor = TcpListener::bind(listen)
        .into_acceptor()
        .await
        .map_err(|source| FrontendError::Bind { addr: listen, source })?;
    let acceptor = IdleTimeoutAcceptor::new(acceptor, config.http_idle_timeout);
    let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(listen);
    tracing::info!(app = app.name(), %addr, "listening");

    let app_endpoint = endpoint_with(app, cache, config.stale_after, config.limits());
    let server = tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app_endpoint, stop_serving.cancelled_owned(), Some(DRAIN_TIMEOUT))
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
