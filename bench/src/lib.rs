//! What the benchmark binaries share: a minimal HTTP/1.1 client.

pub mod http;
