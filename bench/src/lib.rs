//! What the benchmark binaries share: a minimal HTTP/1.1 client, a fresh nats-server and the
//! service binaries as processes, ticks shaped like the publisher's, order statistics.

pub mod consumer;
pub mod http;
pub mod procfs;
pub mod stack;
pub mod stats;
pub mod ticks;
