//! The framework floors for `make bench`, answering with the same fixed body as the hyper ceiling:
//! - `poem-floor <addr> <body file>`: bare Poem (one route, no middleware); its distance to the
//!   ceiling is what Poem itself costs;
//! - `poem-floor --openapi <addr> <body file>`: the same through a poem-openapi service with one
//!   operation (the frontends' router); its distance to bare Poem is what poem-openapi costs.
//!
//! The distance between these and the frontends is what the frontends' own work adds.

use bytes::Bytes;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{IntoEndpoint, Response, Route, Server, get};
use poem_openapi::payload::Binary;
use poem_openapi::{ApiResponse, OpenApi, OpenApiService};

struct FixedBody(Bytes);

#[derive(ApiResponse)]
enum FixedResponse {
    #[oai(status = 200, content_type = "application/json; charset=utf-8")]
    Ok(Binary<Bytes>),
}

#[OpenApi]
impl FixedBody {
    #[oai(path = "/", method = "get")]
    async fn fixed(&self) -> FixedResponse {
        FixedResponse::Ok(Binary(self.0.clone()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let openapi = args.first().is_some_and(|arg| arg == "--openapi");
    if openapi {
        args.remove(0);
    }
    let [addr, body_file] = args.as_slice() else {
        anyhow::bail!("usage: poem-floor [--openapi] <listen addr> <body file>");
    };
    let body = Bytes::from(std::fs::read(body_file)?);
    let acceptor = TcpListener::bind(addr.as_str()).into_acceptor().await?;
    // The bound address (port 0 picks one): bench/run.sh reads it from this line.
    let bound = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied());
    println!("listening addr={}", bound.ok_or_else(|| anyhow::anyhow!("no TCP address bound for {addr}"))?);
    let server = Server::new_with_acceptor(acceptor);
    if openapi {
        server.run(OpenApiService::new(FixedBody(body), "floor", "1").into_endpoint()).await?;
    } else {
        let respond =
            make_sync(move |_| Response::builder().content_type("application/json; charset=utf-8").body(body.clone()));
        server.run(Route::new().at("/", get(respond))).await?;
    }
    Ok(())
}
