use clap::Parser;
use publisher::PublisherConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = PublisherConfig::parse();
    let _telemetry = match btc_common::telemetry::init("publisher", &config.log) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("publisher: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match publisher::run(config, btc_common::shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "publisher failed");
            std::process::ExitCode::FAILURE
        }
    }
}
