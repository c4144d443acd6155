use clap::Parser;
use publisher::PublisherConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = PublisherConfig::parse();
    let _telemetry = btc_common::telemetry::init("publisher", &config.log);
    match publisher::run(config, btc_common::shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "publisher failed");
            std::process::ExitCode::FAILURE
        }
    }
}
