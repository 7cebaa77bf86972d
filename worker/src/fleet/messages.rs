//! What the worker's three parts (claimer, engine thread, reporter) send each other, and what
//! decodes on the engine thread.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lorabeam_core::ModelLimits;
use lorabeam_proto::queue::ShardMessage;
use tokio::sync::Notify;
use tracing::Span;

use super::adapters::AdapterRead;
use super::queue::Claimed;
use crate::model::Gpt2;

/// What decodes: the real model, or an instant echo used only to measure the plumbing.
pub enum Decoder {
    Model {
        model: Box<Gpt2>,
        budget: ModelBudget,
    },
    /// Predicts the first `eval_len` context tokens, padded with 0 like a real prediction.
    Echo,
}

impl Decoder {
    pub fn limits(&self) -> ModelLimits {
        match self {
            Decoder::Model { model, .. } => model.config().limits(),
            Decoder::Echo => ModelLimits::GPT2,
        }
    }

    /// Most rows of the continuous batch (0 for the echo engine, which has none).
    pub fn max_rows(&self) -> usize {
        match self {
            Decoder::Model { budget, .. } => budget.max_rows,
            Decoder::Echo => 0,
        }
    }
}

/// How the model decodes: its batch budgets and how often an item that broke the engine is
/// retried alone before it is reported failed.
#[derive(Debug, Clone, Copy)]
pub struct ModelBudget {
    pub max_rows: usize,
    pub kv_budget_bytes: Option<usize>,
    pub item_retries: usize,
}

/// Into the engine thread.
pub enum FeedMessage {
    /// A shard and its run span, under which its decode batches are traced.
    Shard {
        seq: u32,
        shard: Box<ShardMessage>,
        span: Span,
    },
    /// Shards the worker no longer runs: their items not yet in the batch are dropped.
    Drop {
        seqs: HashSet<u32>,
    },
    /// An adapter the loader thread read (or could not).
    AdapterRead {
        name: String,
        read: Box<AdapterRead>,
        took: Duration,
    },
    Stop,
}

/// What the reporter hears, in the order things happened.
#[derive(Debug)]
pub enum FeedOutput {
    /// A shard the claimer took: the reporter holds it from now on and, when `decode`, hands
    /// it to the engine thread (a poison shard's items come failed right after).
    Claimed {
        seq: u32,
        claimed: Box<Claimed>,
        span: Span,
        decode: bool,
    },
    Predicted {
        seq: u32,
        index: usize,
        predict: Vec<u32>,
        generated_tokens: u64,
    },
    Failed {
        seq: u32,
        index: usize,
        reason: String,
    },
    /// The engine stopped for good (the reporter then releases what is left).
    Stopped,
}

/// What the engine thread tells the claimer: how many items wait for the batch, and a wake-up
/// when that number falls (or a shard is done), instead of a polling loop.
#[derive(Default)]
pub struct FeedShared {
    /// Items claimed and not yet in the batch (counted up by the claimer, down by the engine).
    pub waiting_items: AtomicUsize,
    pub room: Notify,
}

impl FeedShared {
    /// `count` items counted as waiting left (entered the batch, failed, dropped, or never
    /// reached the engine): the claimer may take more.
    pub fn items_left(&self, count: usize) {
        if count > 0 {
            let less = |n: usize| Some(n.saturating_sub(count));
            let _ = self.waiting_items.fetch_update(Ordering::SeqCst, Ordering::SeqCst, less);
            self.room.notify_one();
        }
    }
}

/// A key packs the shard's local sequence number and the item's index in it.
pub fn key(seq: u32, index: usize) -> usize {
    ((seq as usize) << 32) | index
}

pub fn unkey(key: usize) -> (u32, usize) {
    ((key >> 32) as u32, key & 0xffff_ffff)
}
