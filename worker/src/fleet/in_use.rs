//! Which adapters the engine's items use: an item holds its adapter from the moment it is
//! queued for the batch until its result (or failure) leaves the engine thread, so the cache
//! never evicts an adapter that items still use. Every result goes out through [`Outbox`],
//! which lets go of the item's adapter as it sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::feed::FeedOutput;

/// Item key to the name of the adapter it uses (items of the bare base are not held).
#[derive(Default)]
pub struct InUse {
    items: Mutex<HashMap<usize, String>>,
}

impl InUse {
    pub fn hold(&self, key: usize, adapter: &str) {
        if let Ok(mut items) = self.items.lock() {
            items.insert(key, adapter.to_string());
        }
    }

    pub fn release(&self, key: usize) {
        if let Ok(mut items) = self.items.lock() {
            items.remove(&key);
        }
    }

    /// Whether any item still uses `adapter`.
    pub fn uses(&self, adapter: &str) -> bool {
        self.items.lock().map(|items| items.values().any(|a| a == adapter)).unwrap_or(true)
    }

    pub fn is_empty(&self) -> bool {
        self.items.lock().map(|items| items.is_empty()).unwrap_or(false)
    }
}

/// The engine thread's way out to the reporter.
#[derive(Clone)]
pub struct Outbox {
    tx: UnboundedSender<FeedOutput>,
    in_use: Arc<InUse>,
}

impl Outbox {
    pub fn new(tx: UnboundedSender<FeedOutput>, in_use: Arc<InUse>) -> Self {
        Self { tx, in_use }
    }

    /// Sends one output (a reporter gone away has stopped listening: nothing to do); an item's
    /// result or failure lets go of its adapter.
    pub fn send(&self, output: FeedOutput) {
        if let FeedOutput::Predicted { seq, index, .. } | FeedOutput::Failed { seq, index, .. } = &output {
            self.in_use.release(super::feed::key(*seq, *index));
        }
        let _ = self.tx.send(output);
    }

    pub fn in_use(&self) -> &Arc<InUse> {
        &self.in_use
    }
}
