use aggregator::AggregatorConfig;
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = AggregatorConfig::parse();
    let _telemetry = match btc_runtime::telemetry::init("aggregator", &config.log) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("aggregator: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match aggregator::run(config, btc_runtime::shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "aggregator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
