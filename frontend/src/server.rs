//! Assembles each app (API, spec, Swagger UI, JSON errors) and serves it with graceful shutdown,
//! beside its ops port (`/metrics`, `/liveness`, `/readiness`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btc_runtime::ops::OpsState;
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route};
use poem_openapi::OpenApi;
use tokio_util::sync::CancellationToken;

use crate::api::caching::{self, CachePolicy};
use crate::api::{
    self, bitcoin::BitcoinApi, history::HistoryApi, probes, probes::ProbesApi, rest::RestApi, stream::StreamApi,
};
use crate::app::App;
use crate::cache::{self, StateCache};
use crate::config::FrontendConfig;
use crate::dashboard;
use crate::error::FrontendError;
use crate::frontline::Frontline;
use crate::hardening::{self, Limits};
use crate::hot_routes::HotRoutes;
use crate::idle::{ConnectionTimeouts, IdleTimeoutAcceptor};
use crate::metrics::FrontendMetrics;
use crate::routes;
use crate::server_span::{RequestHead, ServerSpans};

/// How long in-flight requests may take to finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The app's public HTTP endpoint over `cache`: its API, `/openapi.json`, `/openapi.yaml`, `/docs`,
/// with JSON errors and request metrics (`/metrics` is on the ops port, see [`ops_state`]); the
/// hot routes answered first, as the server does.
pub fn endpoint(app: App, cache: Arc<StateCache>, stale_after: Duration) -> BoxEndpoint<'static> {
    endpoint_with(app, cache, stale_after, Limits::default())
}

/// [`endpoint`] with explicit HTTP limits.
pub fn endpoint_with(app: App, cache: Arc<StateCache>, stale_after: Duration, limits: Limits) -> BoxEndpoint<'static> {
    service(app, cache, stale_after, limits).boxed()
}

/// What the public port serves: the hot routes answered before Poem, and the endpoint that
/// answers everything else (and the hot routes too, for a request that is not plain).
pub struct PublicService {
    pub hot: HotRoutes,
    pub endpoint: BoxEndpoint<'static>,
}

/// Both paths behind one endpoint, as the server takes them (it asks the hot routes with hyper's
/// request, before any `poem::Request` is built): what tests drive with Poem's test client.
impl Endpoint for PublicService {
    type Output = Response;

    async fn call(&self, request: poem::Request) -> poem::Result<Response> {
        if let Some(response) = self.hot.answer(&RequestHead::of(&request)) {
            return Ok(response);
        }
        self.endpoint.call(request).await
    }
}

/// The public service over `cache`, with its own metrics and no spans.
pub fn service(app: App, cache: Arc<StateCache>, stale_after: Duration, limits: Limits) -> PublicService {
    let metrics = Arc::new(FrontendMetrics::new(app.name(), routes::of(app), routes::pages(app), app.serves_state()));
    public_service(app, cache, stale_after, limits, metrics, None)
}

/// The public service, counting its requests in `metrics` and, with `spans`, tracing them.
fn public_service(
    app: App,
    cache: Arc<StateCache>,
    stale_after: Duration,
    limits: Limits,
    metrics: Arc<FrontendMetrics>,
    spans: Option<ServerSpans>,
) -> PublicService {
    let probes = ProbesApi::new(cache.clone(), app.serves_state());
    let (api, pages, prices) = match app {
        App::BitcoinApi => {
            let (history, stream) = (HistoryApi::new(cache.clone()), StreamApi::new(cache.clone()));
            let prices = BitcoinApi::new(cache, stale_after);
            let hot = prices.prices();
            let (api, docs) = api_and_docs(app, (prices, history, stream, probes));
            (api, docs.nest(routes::DASHBOARD, dashboard::routes()), Some(hot))
        }
        App::RestApi => {
            let (api, docs) = api_and_docs(app, (RestApi, probes));
            (api, docs, None)
        }
    };
    let cors = hardening::cors(&limits);
    let routes = Dispatch { app, api, pages }.with_if(cors.is_some(), cors.unwrap_or_default());
    let spans = spans.map(Arc::new);
    let hot = HotRoutes::new(app, prices, limits.clone(), metrics.clone(), spans.clone());
    PublicService { hot, endpoint: Frontline::new(routes, limits, metrics, spans).boxed() }
}

/// What the ops port of `app` serves: its metrics and the same readiness as the API port's.
pub fn ops_state(app: App, cache: Arc<StateCache>, metrics: Arc<FrontendMetrics>) -> Arc<dyn OpsState> {
    Arc::new(FrontendOps { cache, metrics, serves_state: app.serves_state() })
}

struct FrontendOps {
    cache: Arc<StateCache>,
    metrics: Arc<FrontendMetrics>,
    serves_state: bool,
}

impl OpsState for FrontendOps {
    fn readiness(&self) -> Result<(), String> {
        probes::readiness(&self.cache, self.serves_state)
    }

    fn metrics(&self) -> String {
        self.metrics.render(&self.cache)
    }
}

/// The app's API, and the routes of its spec and Swagger UI.
fn api_and_docs<T: OpenApi + 'static>(app: App, apis: T) -> (BoxEndpoint<'static>, Route) {
    let service = api::service(apis, format!("{} ({})", api::TITLE, app.name()));
    let docs = Route::new()
        .at(routes::SPEC_JSON, service.spec_endpoint())
        .at(routes::SPEC_YAML, service.spec_endpoint_yaml())
        .nest(routes::DOCS, service.swagger_ui());
    (service.into_endpoint(), docs)
}

/// How long the spec and the pages (Swagger UI, the live page) may be reused.
pub const DOCS_CACHE: CachePolicy = CachePolicy::MaxAge(300);

/// Sends the spec's and the pages' paths to `pages` and every other request straight to the API:
/// nesting the API under `/` in one router would rebuild each request's URI.
struct Dispatch {
    app: App,
    api: BoxEndpoint<'static>,
    pages: Route,
}

impl Endpoint for Dispatch {
    type Output = Response;

    async fn call(&self, request: poem::Request) -> poem::Result<Response> {
        if !routes::is_beside_api(self.app, request.uri().path()) {
            return self.api.call(request).await;
        }
        // The spec and the pages change only with a release: a CDN or a browser may keep them
        // for a few minutes (a rollout shows everywhere within them).
        let response = self.pages.call(request).await?;
        Ok(if response.status().is_success() { caching::with_policy(response, DOCS_CACHE) } else { response })
    }
}

/// A frontend that is listening.
pub struct Running {
    /// The address of the public port (the real port when started on port 0).
    pub addr: SocketAddr,
    /// The address of the ops port (`/metrics`, `/liveness`, `/readiness`).
    pub ops_addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    ops: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the server has stopped (after shutdown and the drain).
    pub async fn wait(self) -> Result<(), FrontendError> {
        let served = match self.server.await {
            Ok(result) => result.map_err(FrontendError::Serve),
            Err(join) => Err(FrontendError::Serve(std::io::Error::other(join))),
        };
        // The ops port stops with the same token; a failure there is logged by its task.
        let _ = self.ops.await;
        served
    }
}

/// Connects to NATS (in the background) and starts watching the state if the app serves it,
/// binds the public and the ops port and starts serving. rest-api needs no NATS at all.
///
/// On `shutdown`: readiness fails at once, requests are still served for `shutdown_delay` (the
/// time a load balancer needs to notice), then the server stops accepting and gives in-flight
/// requests up to [`DRAIN_TIMEOUT`].
pub async fn start(app: App, config: FrontendConfig, shutdown: CancellationToken) -> Result<Running, FrontendError> {
    let stop_serving = CancellationToken::new();
    let started = serve(app, config, shutdown, stop_serving.clone()).await;
    if started.is_err() {
        // Nothing serves: stop the state watch too.
        stop_serving.cancel();
    }
    started
}

async fn serve(
    app: App,
    config: FrontendConfig,
    shutdown: CancellationToken,
    stop_serving: CancellationToken,
) -> Result<Running, FrontendError> {
    let cache = if app.serves_state() {
        let client = config.nats.connect(app.name()).await?;
        let cache = Arc::new(
            StateCache::new(Some(client.clone()), config.pairs.pairs()).with_stream_limit(config.stream_limit),
        );
        tokio::spawn(cache::watch_state(client.clone(), cache.clone(), stop_serving.clone()));
        tokio::spawn(crate::feeds::follow_ticks(client.clone(), cache.clone(), stop_serving.clone()));
        tokio::spawn(crate::candles_follow::follow_candles(client, cache.candles().clone(), stop_serving.clone()));
        cache
    } else {
        Arc::new(StateCache::new(None, config.pairs.pairs()))
    };
    tokio::spawn(drain_on(shutdown, cache.clone(), stop_serving.clone(), config.shutdown_delay));

    let listen = config.listen_addr.unwrap_or_else(|| app.default_listen_addr());
    let acceptor = TcpListener::bind(listen)
        .into_acceptor()
        .await
        .map_err(|source| FrontendError::Bind { addr: listen, source })?;
    let timeouts = ConnectionTimeouts { idle: config.http_idle_timeout, header_read: config.http_header_read_timeout };
    let acceptor = IdleTimeoutAcceptor::new(acceptor, timeouts);
    let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(listen);

    let metrics = Arc::new(FrontendMetrics::new(app.name(), routes::of(app), routes::pages(app), app.serves_state()));
    let ops_listen = config.ops_addr.unwrap_or_else(|| app.default_ops_addr());
    let (ops_addr, ops) =
        btc_runtime::ops::serve(ops_listen, ops_state(app, cache.clone(), metrics.clone()), stop_serving.clone())
            .await
            .map_err(|source| FrontendError::Bind { addr: ops_listen, source })?;
    tracing::info!(app = app.name(), %addr, %ops_addr, "listening");

    let spans = btc_runtime::telemetry::tracing_requested()
        .then(|| ServerSpans::new(opentelemetry::global::tracer(app.name()), config.trust_incoming_trace_context));
    let service = public_service(app, cache, config.stale_after, config.limits(), metrics, spans);
    let server = tokio::spawn(crate::http1::serve(acceptor, service, stop_serving, DRAIN_TIMEOUT));
    Ok(Running { addr, ops_addr, server, ops })
}

/// On `shutdown`: fails readiness at once, keeps serving for `delay`, then stops serving.
async fn drain_on(
    shutdown: CancellationToken,
    cache: Arc<StateCache>,
    stop_serving: CancellationToken,
    delay: Duration,
) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = stop_serving.cancelled() => return,
    }
    cache.start_draining();
    tracing::info!(?delay, "shutting down: readiness fails, still serving during the delay");
    tokio::time::sleep(delay).await;
    stop_serving.cancel();
}

/// Runs `app` until shutdown.
pub async fn run(app: App, config: FrontendConfig, shutdown: CancellationToken) -> Result<(), FrontendError> {
    start(app, config, shutdown).await?.wait().await?;
    tracing::info!(app = app.name(), "stopped");
    Ok(())
}
