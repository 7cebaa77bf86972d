//! The coordinator's stop: after SIGTERM, long-lived streams end on their own terms (a worker's
//! `Report` stream after the batch it is storing, a client's watch or results at once), each
//! with UNAVAILABLE so its peer reconnects to the next coordinator, and the process exits
//! within a bounded grace even if a peer never lets go.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use tonic::Status;

/// Shared by every handler: whether the coordinator is draining, and how many worker streams
/// are open (logged as they close).
#[derive(Clone)]
pub struct Drain {
    draining: Arc<watch::Sender<bool>>,
    worker_streams: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        Self { draining: Arc::new(watch::channel(false).0), worker_streams: Arc::default() }
    }
}

impl Drain {
    /// Starts draining: every stream ends at its next safe point.
    pub fn begin(&self) {
        self.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has begun.
    pub async fn begun(&self) {
        let mut rx = self.draining.subscribe();
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// What a stream ended by the drain tells its peer: come back to the next coordinator.
    pub fn status() -> Status {
        Status::from(crate::error::CoordinatorError::ShuttingDown)
    }

    /// Counts a worker stream open until the guard drops.
    pub fn worker_stream(&self) -> WorkerStream {
        self.worker_streams.fetch_add(1, Ordering::SeqCst);
        WorkerStream { drain: self.clone() }
    }

    pub fn open_worker_streams(&self) -> usize {
        self.worker_streams.load(Ordering::SeqCst)
    }
}

/// One open worker `Report` stream.
pub struct WorkerStream {
    drain: Drain,
}

impl Drop for WorkerStream {
    fn drop(&mut self) {
        let left = self.drain.worker_streams.fetch_sub(1, Ordering::SeqCst) - 1;
        if self.drain.is_draining() {
            tracing::info!(open_worker_streams = left, "shutdown: a worker stream is closed");
        }
    }
}
