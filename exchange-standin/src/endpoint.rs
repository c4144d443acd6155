//! A stand-in's HTTP answers: the venue's real format, or whatever [`Behaviour`] it was told to
//! misbehave with.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, Request, Response};

use btc_contract::Pair;

use crate::route::{Route, route};
use crate::{Active, BINANCE_WEIGHT_LIMIT, Behaviour, Shared, Venue, bodies};

pub(crate) struct VenueEndpoint {
    pub(crate) shared: Arc<Shared>,
}

impl Endpoint for VenueEndpoint {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let shared = &self.shared;
        let count = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let _active = Active::enter(shared);
        let venue = shared.venue;
        tracing::debug!(venue = venue.name(), uri = %request.uri(), count, "request");
        let pair = match route(venue, request.uri().path(), request.uri().query()) {
            Route::NotFound => return Ok(Response::builder().status(StatusCode::NOT_FOUND).body("not found")),
            Route::UnknownPair => None,
            Route::Pair(pair) => Some(pair),
        };
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Ok(Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).body("method not allowed"));
        }
        let weight = shared.spend_weight(since_epoch());
        let Some(pair) = pair else {
            let (status, body) = bodies::unknown_pair(venue);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return Ok(with_weight(venue, weight, &Behaviour::Normal, json_response(status, body.into_bytes())));
        };
        let mut behaviour = shared.behaviour.subscribe();
        let mut shutdown = shared.shutdown.subscribe();
        loop {
            let current = behaviour.borrow_and_update().clone();
            match current {
                Behaviour::Hang => {}
                Behaviour::Delayed { delay_ms } => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {
                            return Ok(with_weight(venue, weight, &current, answer(shared, &pair, &Behaviour::Normal)));
                        }
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
                _ => return Ok(with_weight(venue, weight, &current, answer(shared, &pair, &current))),
            }
            tokio::select! {
                changed = behaviour.changed() => if changed.is_err() { break },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        Ok(Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body("stand-in shutting down"))
    }
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Binance.US reports the weight used this minute on every answer, in the current header and in
/// the older one without the interval.
fn with_weight(venue: Venue, own: u32, behaviour: &Behaviour, mut response: Response) -> Response {
    if venue != Venue::BinanceUs {
        return response;
    }
    let used = match behaviour {
        Behaviour::UsedWeight(used) => *used,
        Behaviour::ThrottledIn200 => BINANCE_WEIGHT_LIMIT,
        _ => own,
    };
    for name in ["x-mbx-used-weight-1m", "x-mbx-used-weight"] {
        response.headers_mut().insert(name, header::HeaderValue::from(used));
    }
    response
}

fn answer(shared: &Shared, pair: &Pair, behaviour: &Behaviour) -> Response {
    let venue = shared.venue;
    let now = since_epoch();
    let price = shared.price_now(pair);
    let ticker = |text: Option<&str>| bodies::ticker(venue, pair, price, text, now);
    let (status, body) = match behaviour {
        Behaviour::Normal | Behaviour::Hang | Behaviour::Delayed { .. } | Behaviour::UsedWeight(_) => {
            (200, ticker(Some(&bodies::price_json(venue, price))))
        }
        Behaviour::RawPrice(raw) => (200, ticker(Some(raw))),
        Behaviour::MissingField => (200, ticker(None)),
        Behaviour::Garbage => {
            // Half a real answer, as a connection cut mid-body delivers it.
            let mut whole = ticker(Some(&bodies::price_json(venue, price))).into_bytes();
            whole.truncate(whole.len() / 2);
            return json_response(StatusCode::OK, whole);
        }
        Behaviour::SlowBody { byte_every_ms } => {
            let whole = ticker(Some(&bodies::price_json(venue, price))).into_bytes();
            let (mut writer, reader) = tokio::io::duplex(64);
            let pause = std::time::Duration::from_millis(*byte_every_ms);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for byte in whole {
                    tokio::time::sleep(pause).await;
                    if writer.write_all(&[byte]).await.is_err() {
                        return;
                    }
                }
            });
            return Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(poem::Body::from_async_read(reader));
        }
        Behaviour::Status(status) => (*status, bodies::error(venue, *status)),
        Behaviour::RateLimited { .. } => (429, bodies::error(venue, 429)),
        Behaviour::ExchangeError => bodies::exchange_error(venue),
        Behaviour::ThrottledIn200 => bodies::throttled(venue, pair, price, now),
        Behaviour::HugeError { body_bytes } => (200, bodies::huge_error(venue, *body_bytes)),
        Behaviour::Redirect { status, location } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
            let mut response = Response::builder().status(status).body(format!("moved to {location}"));
            if let Ok(value) = header::HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, body.into_bytes());
    if let Behaviour::RateLimited { retry_after_secs } = behaviour {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after_secs));
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder().status(status).content_type("application/json").body(body)
}
