//! Reading a `text/event-stream` body event by event, as a browser's `EventSource` does (the
//! subset the frontends send: `id`, `event`, `data`, `retry` and comment lines): the stream
//! route's tests, the e2e test and the fan-out bench read streams with it.

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    /// `message` unless the event names itself.
    pub name: String,
    pub data: String,
}

impl Event {
    /// The id as a tick sequence (the stream route's ids are).
    pub fn sequence(&self) -> Option<u64> {
        self.id.as_deref()?.parse().ok()
    }

    /// The data as JSON (the stream route's data is one JSON object).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{error}: not JSON: {}", self.data))
    }
}

/// Events out of a body's chunks.
pub struct EventReader<S> {
    body: S,
    buffer: Vec<u8>,
    /// The last `retry:` the server sent, milliseconds.
    pub retry: Option<u64>,
    /// Comment lines read (heartbeats).
    pub comments: usize,
}

impl<S, E> EventReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(body: S) -> Self {
        Self { body, buffer: Vec::new(), retry: None, comments: 0 }
    }

    /// The next event; `None` once the body has ended. A body error panics: a test reads a
    /// stream it expects to be well-formed.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            match self.body.next().await? {
                Ok(chunk) => self.buffer.extend_from_slice(&chunk),
                Err(error) => panic!("the event stream broke: {error}"),
            }
        }
    }

    /// One block: an event if it has data, else `None` (a comment, a `retry:`).
    fn parse(&mut self, block: &[u8]) -> Option<Event> {
        let text = std::str::from_utf8(block).unwrap_or_else(|_| panic!("not UTF-8: {block:?}"));
        let (mut id, mut name, mut data) = (None, "message".to_string(), None::<String>);
        for line in text.lines() {
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_string()),
                "event" => name = value.to_string(),
                "data" => match &mut data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                "retry" => self.retry = value.parse().ok(),
                _ => {}
            }
        }
        Some(Event { id, name, data: data? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(chunks: &[&'static str]) -> EventReader<impl Stream<Item = Result<Bytes, String>> + Unpin> {
        EventReader::new(futures::stream::iter(chunks.iter().map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))))
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_read_whole_and_comments_counted() {
        let mut events =
            reader(&["retry: 3000\n\n:\n\nid: 7\nevent: pri", "ce\ndata: {\"a\":1}\n", "\ndata: x\ndata: y\n\n"]);
        let first = events.next().await.expect("an event");
        assert_eq!((first.sequence(), first.name.as_str(), first.json()["a"].as_i64()), (Some(7), "price", Some(1)));
        let second = events.next().await.expect("an event");
        assert_eq!((second.id, second.name.as_str(), second.data.as_str()), (None, "message", "x\ny"));
        assert_eq!((events.retry, events.comments), (Some(3_000), 1));
        assert_eq!(events.next().await, None);
    }
}
