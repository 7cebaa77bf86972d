//! Change notifications per job, so `WatchJob` and `StreamResults` wake when results arrive
//! instead of polling Redis. They still re-read Redis on a timer, which covers changes this
//! process did not see (a restart, another replica).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct JobEvents {
    channels: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl JobEvents {
    /// A receiver that changes whenever [`notify`](Self::notify) is called for `job_id`.
    pub fn subscribe(&self, job_id: &str) -> watch::Receiver<u64> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(job_id.to_string()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    pub fn notify(&self, job_id: &str) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(job_id) {
            sender.send_modify(|n| *n += 1);
        }
    }

    /// Drops channels nobody listens to any more.
    pub fn prune(&self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
    }
}
