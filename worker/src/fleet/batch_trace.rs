//! How a batch that mixes shards is traced. The batch has its own `decode_batch` span (under
//! the run span of the shard that opened it), linked to the run span of every shard it
//! served. Each shard in it gets a `decode_share` span under its own run span, from its first
//! item's admission until its last admitted item is done, with its counts and a link back to
//! the batch. So every job's trace shows its own decoding, also in a batch another job opened.

use std::collections::{HashMap, HashSet};

use lorabeam_proto::telemetry::{add_link, int};
use tracing::{field::Empty, info_span, Span};

/// The shares of the running batch, by the shard's local sequence number.
#[derive(Default)]
pub struct BatchTrace {
    batch: Option<Span>,
    open: HashMap<u32, Share>,
    /// Shards the batch span already links to.
    linked: HashSet<u32>,
}

struct Share {
    span: Span,
    /// Admitted items not yet done.
    pending: usize,
    items: usize,
    tokens: u64,
}

impl Share {
    fn close(self) {
        self.span.record("items", int(self.items));
        self.span.record("tokens", int(self.tokens));
        // Dropping the span ends it.
    }
}

impl BatchTrace {
    /// A new batch starts, traced by `batch`.
    pub fn start(&mut self, batch: Span) {
        self.batch = Some(batch);
    }

    /// An item of shard `seq`, whose run span is `run`, enters the batch.
    pub fn admit(&mut self, seq: u32, run: &Span) {
        let batch = self.batch.get_or_insert_with(Span::none);
        if self.linked.insert(seq) {
            add_link(batch, run);
        }
        let share = self.open.entry(seq).or_insert_with(|| {
            let span = info_span!(parent: run, "decode_share", items = Empty, tokens = Empty);
            add_link(&span, batch);
            Share { span, pending: 0, items: 0, tokens: 0 }
        });
        share.pending += 1;
        share.items += 1;
    }

    /// An admitted item of shard `seq` is done (decoded with `tokens` generated, or failed).
    pub fn done(&mut self, seq: u32, tokens: u64) {
        let Some(share) = self.open.get_mut(&seq) else { return };
        share.tokens += tokens;
        share.pending = share.pending.saturating_sub(1);
        if share.pending == 0 {
            if let Some(share) = self.open.remove(&seq) {
                share.close();
            }
        }
    }

    /// The batch ended: closes what is still open. Returns how many shards it served.
    pub fn finish(&mut self) -> usize {
        for (_, share) in self.open.drain() {
            share.close();
        }
        self.batch = None;
        let served = self.linked.len();
        self.linked.clear();
        served
    }
}
