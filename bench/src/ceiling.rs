//! The HTTP ceiling for `make bench`: a bare hyper server that answers every request with one fixed
//! JSON body (the same bytes bitcoin-api served), doing nothing else. The frontends' req/s and p99
//! are reported as ratios to this, measured in the same run on the same machine.
//!
//! Usage: ceiling <listen addr> <body file>

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(body_file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: ceiling <listen addr> <body file>");
    };
    let addr: SocketAddr = addr.parse()?;
    let body = Bytes::from(std::fs::read(&body_file)?);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The bound address (port 0 picks one): bench/run.sh reads it from this line.
    println!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<Incoming>| {
                let body = body.clone();
                async move {
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
