//! The load: many Server-Sent Events clients, each on its own keep-alive HTTP/1.1 connection,
//! reading every event as it comes and timing each `price` event from its state's write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::writer::WriteTimes;

/// Connections opened at once: the listen backlog (`somaxconn`, often 4,096) must not overflow.
const CONNECTING_AT_ONCE: usize = 500;

/// What one client saw.
#[derive(Default)]
pub struct Seen {
    /// Delivery of each measured `price` event, microseconds.
    pub latencies_us: Vec<u32>,
    /// Ticks skipped between two `price` events, or after the last one read when the stream ended.
    pub lost: u64,
    /// `price` events at or before one already read.
    pub duplicated: u64,
    /// The stream ended before the run did.
    pub dropped: bool,
    /// The sequence of the last `price` event read (0 before the first).
    last_read: u64,
}

/// Where every client stands, for the run to wait until they have all read the last tick.
struct Progress {
    last_read: Vec<AtomicU64>,
    ended: Vec<AtomicBool>,
}

impl Progress {
    /// The number of clients still connected that have not yet read `sequence`.
    fn behind(&self, sequence: u64) -> usize {
        let behind = |(read, ended): (&AtomicU64, &AtomicBool)| {
            read.load(Ordering::Acquire) < sequence && !ended.load(Ordering::Acquire)
        };
        self.last_read.iter().zip(&self.ended).filter(|&client| behind(client)).count()
    }
}

/// The connected clients, reading in the background.
pub struct Clients {
    tasks: JoinSet<Seen>,
    progress: Arc<Progress>,
    /// Cancelled when the run is over: the clients stop reading.
    over: CancellationToken,
}

impl Clients {
    /// Opens `count` streams of `path` on `addr`, and returns once every one has its response
    /// head (200): from then on each reads and times its events.
    pub async fn connect(addr: &str, path: &str, count: usize, times: Arc<WriteTimes>) -> anyhow::Result<Self> {
        let progress = Arc::new(Progress {
            last_read: (0..count).map(|_| AtomicU64::new(0)).collect(),
            ended: (0..count).map(|_| AtomicBool::new(false)).collect(),
        });
        let over = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut index = 0;
        while index < count {
            let wave = CONNECTING_AT_ONCE.min(count - index);
            let mut opening = JoinSet::new();
            for _ in 0..wave {
                let (addr, path) = (addr.to_string(), path.to_string());
                opening.spawn(async move { open(&addr, &path).await });
            }
            while let Some(opened) = opening.join_next().await {
                let body = opened.context("a connecting task")??;
                let reader = Reader { index, times: times.clone(), progress: progress.clone(), over: over.clone() };
                tasks.spawn(reader.read(body));
                index += 1;
            }
        }
        Ok(Self { tasks, progress, over })
    }

    /// Waits (up to `timeout`) until every client has read `last_sequence` or has been dropped,
    /// then ends every stream and returns what each saw, counting as lost every tick of
    /// `first_sequence..=last_sequence` a client had not read by then.
    pub async fn finish(
        mut self,
        first_sequence: u64,
        last_sequence: u64,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Seen>> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.progress.behind(last_sequence) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.over.cancel();
        let mut seen = Vec::with_capacity(self.tasks.len());
        while let Some(joined) = self.tasks.join_next().await {
            let mut client = joined.context("a client task")?;
            client.lost += last_sequence.saturating_sub(client.last_read.max(first_sequence - 1));
            seen.push(client);
        }
        Ok(seen)
    }
}

type EventBody = hyper::body::Incoming;

/// One stream's response body, after a 200 head.
async fn open(addr: &str, path: &str) -> anyhow::Result<EventBody> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, addr)
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let response = sender.send_request(request).await.with_context(|| format!("GET {path}"))?;
    if !response.status().is_success() {
        bail!("GET {path} answered {}", response.status());
    }
    Ok(response.into_body())
}

/// One client's reading loop.
struct Reader {
    index: usize,
    times: Arc<WriteTimes>,
    progress: Arc<Progress>,
    over: CancellationToken,
}

impl Reader {
    /// Reads until the run is over or the stream ends; a tick not read by then is lost.
    async fn read(self, mut body: EventBody) -> Seen {
        let mut seen = Seen::default();
        let mut last: Option<u64> = None;
        let mut buffer = BytesMut::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = self.over.cancelled() => break,
            };
            let Some(Ok(frame)) = frame else {
                seen.dropped = true;
                self.progress.ended[self.index].store(true, Ordering::Release);
                break;
            };
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
                let event = buffer.split_to(end + 2);
                if let Some(sequence) = price_id(&event) {
                    self.on_price(sequence, &mut last, &mut seen);
                }
            }
        }
        seen
    }

    fn on_price(&self, sequence: u64, last: &mut Option<u64>, seen: &mut Seen) {
        let now = self.times.epoch.elapsed().as_nanos() as u64;
        match *last {
            Some(previous) if sequence <= previous => {
                seen.duplicated += 1;
                return;
            }
            Some(previous) => seen.lost += sequence - previous - 1,
            None => {}
        }
        *last = Some(sequence);
        seen.last_read = sequence;
        self.progress.last_read[self.index].store(sequence, Ordering::Release);
        if let Some(written) = self.times.written_at(sequence) {
            let micros = now.saturating_sub(written) / 1_000;
            seen.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
}

/// The `id` of a `price` event (its tick's sequence); `None` for any other event or a comment.
fn price_id(event: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(event).ok()?;
    let mut id = None;
    let mut is_price = false;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.trim().parse().ok();
        } else if line == "event: price" {
            is_price = true;
        }
    }
    id.filter(|_| is_price)
}

#[cfg(test)]
mod tests {
    use super::price_id;

    #[test]
    fn only_a_price_event_s_id_is_read() {
        assert_eq!(price_id(b"id: 42\nevent: price\ndata: {}\n\n"), Some(42));
        assert_eq!(price_id(b"event: average\ndata: {}\n\n"), None);
        assert_eq!(price_id(b"retry: 3000\n\n"), None);
        assert_eq!(price_id(b": heartbeat\n\n"), None);
    }
}
