//! The HTTP frontends `bitcoin-api` and `rest-api` (Poem + poem-openapi). Both watch the state the
//! aggregator writes to NATS KV and serve every request from memory.

pub mod api;
pub mod cache;
pub mod config;
pub mod error;
pub mod frontline;
pub mod hardening;
pub mod idle;
pub mod metrics;
pub mod server;

pub use config::FrontendConfig;
pub use error::FrontendError;
pub use server::{App, Running, run, start};

/// The body of a frontend binary's `main`.
pub async fn main_for(app: App) -> std::process::ExitCode {
    use clap::Parser;
    let config = FrontendConfig::parse_from(std::env::args_os().enumerate().map(|(i, arg)| {
        // `--help` should name the binary that was run, not the shared config struct.
        if i == 0 { std::ffi::OsString::from(app.name()) } else { arg }
    }));
    let _telemetry = btc_common::telemetry::init(app.name(), &config.log);
    match run(app, config, btc_common::shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, app = app.name(), "frontend failed");
            std::process::ExitCode::FAILURE
        }
    }
}
