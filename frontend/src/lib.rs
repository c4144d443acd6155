//! The HTTP frontends `bitcoin-api` and `rest-api` (Poem + poem-openapi). Both watch the state the
//! aggregator writes to NATS KV and serve every request from memory.

pub mod api;
pub mod app;
pub mod cache;
pub mod candles;
pub mod candles_follow;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod feeds;
pub mod frontline;
pub mod hardening;
pub mod hot_routes;
pub mod http1;
pub mod idle;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod server_span;
pub mod stream_connection;

pub use app::App;
pub use config::FrontendConfig;
pub use error::FrontendError;
pub use server::{Running, run, start};

/// The body of a frontend binary's `main`: parses the configuration, builds the tokio runtime
/// with the configured worker threads, and runs the app until a signal stops it.
pub fn main_for(app: App) -> std::process::ExitCode {
    use clap::Parser;
    let config = FrontendConfig::parse_from(std::env::args_os().enumerate().map(|(i, arg)| {
        // `--help` should name the binary that was run, not the shared config struct.
        if i == 0 { std::ffi::OsString::from(app.name()) } else { arg }
    }));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        runtime.worker_threads(threads.get());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the tokio runtime: {error}", app.name());
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let _telemetry = match btc_runtime::telemetry::init(app.name(), &config.log) {
            Ok(telemetry) => telemetry,
            Err(error) => {
                eprintln!("{}: {error}", app.name());
                return std::process::ExitCode::FAILURE;
            }
        };
        match run(app, config, btc_runtime::shutdown::on_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, app = app.name(), "frontend failed");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
