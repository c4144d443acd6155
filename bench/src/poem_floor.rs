//! The framework floor for `make bench`: a bare Poem server (one route, no middleware) answering
//! with the same fixed body as the hyper ceiling. The distance between the two is what Poem itself
//! costs; the distance between this and the frontends is what the frontends add.
//!
//! Usage: poem-floor <listen addr> <body file>

use bytes::Bytes;
use poem::endpoint::make_sync;
use poem::listener::TcpListener;
use poem::{Response, Route, Server, get};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(body_file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: poem-floor <listen addr> <body file>");
    };
    let body = Bytes::from(std::fs::read(&body_file)?);
    let respond =
        make_sync(move |_| Response::builder().content_type("application/json; charset=utf-8").body(body.clone()));
    Server::new(TcpListener::bind(addr)).run(Route::new().at("/", get(respond))).await?;
    Ok(())
}
