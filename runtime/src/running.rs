//! What `start` returns for a worker service (publisher, aggregator): the address its ops port
//! bound, so tests and scripts can start it on port 0, and the task that runs it.

use std::net::SocketAddr;

use tokio::task::{AbortHandle, JoinHandle};

/// A started worker service.
pub struct RunningWorker<E> {
    /// The address of the ops port (`/metrics`, `/liveness`, `/readiness`); the real port when
    /// configured with port 0.
    pub ops_addr: SocketAddr,
    task: JoinHandle<Result<(), E>>,
}

impl<E> RunningWorker<E> {
    pub fn new(ops_addr: SocketAddr, task: JoinHandle<Result<(), E>>) -> Self {
        Self { ops_addr, task }
    }

    /// Waits until the service has stopped (its work in flight finished, NATS flushed, the ops
    /// port closed).
    pub async fn wait(self) -> Result<(), E> {
        match self.task.await {
            Ok(result) => result,
            // The task is never aborted but by `abort_handle`, so it ended in a panic: let it go on up.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Stops the service's task at once, as a crash would (no flush, no ack): for tests.
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.abort_handle()
    }
}
