use clap::Parser;
use publisher::PublisherConfig;
use publisher::config::{Command, SetupCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = PublisherConfig::parse();
    if let Some(Command::Setup(setup)) = config.command.take() {
        return run_setup(setup).await;
    }
    let _telemetry = match btc_runtime::telemetry::init("publisher", &config.log) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("publisher: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match publisher::run(config, btc_runtime::shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "publisher failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `publisher setup`: the setup step, then exit (0 once everything exists as configured).
async fn run_setup(command: SetupCommand) -> std::process::ExitCode {
    let _telemetry = match btc_runtime::telemetry::init("publisher-setup", &command.log) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("publisher setup: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match btc_runtime::setup::run(&command.setup).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "setup failed");
            std::process::ExitCode::FAILURE
        }
    }
}
