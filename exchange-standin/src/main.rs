//! Runs every exchange stand-in for `make demo`: prints `SOURCE_URLS=...` on stdout, logs to stderr.

use std::io::IsTerminal;
use std::net::IpAddr;

use clap::Parser;
use exchange_standin::{DemoConfig, Venue};
use tracing_subscriber::EnvFilter;

/// Local HTTP stand-ins for the exchanges, in their real formats, around a random-walk price.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Venue i (in the order coinbase, kraken, bitstamp, gemini, bitfinex, binanceus, cexio,
    /// coingecko) listens on base-port + i; 0 picks free ports.
    #[arg(long, default_value_t = 9100)]
    base_port: u16,
    /// Venues to serve, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "coinbase,kraken,bitstamp,gemini,bitfinex,binanceus,cexio,coingecko"
    )]
    venues: Vec<Venue>,
    /// Starting BTC-USD price; the other pairs (BTC-EUR, BTC-GBP, ETH-USD, ...) follow at fixed
    /// rates.
    #[arg(long, default_value_t = 97_000.0)]
    price: f64,
    /// Relative standard deviation of the price's move per second.
    #[arg(long, default_value_t = 0.0005)]
    volatility: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = DemoConfig {
        bind_ip: args.bind_ip,
        base_port: args.base_port,
        venues: args.venues,
        price: args.price,
        volatility: args.volatility,
    };
    exchange_standin::run(&config, &mut std::io::stdout(), exchange_standin::shutdown_signal()).await
}
