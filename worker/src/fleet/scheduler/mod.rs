//! The worker's scheduler: which claimed item enters the batch next, when the batch's decoding
//! parameters switch, when an adapter must be loaded or may be evicted, and what a dropped
//! shard takes with it. It is pure (TGI's `queue.rs` is the model): events go in as method
//! calls, decisions come out as the next item and as [`Action`]s; no channel, model, Redis or
//! disk is inside. The engine thread ([`super::feed`]) owns it and does the I/O.
//!
//! The rules:
//! - The batch shares one set of decoding parameters. A shard with other parameters waits in
//!   `later`, and so does every shard after it, so the batch drains; then the parameters of
//!   the oldest waiting shard (of a held adapter first, when held adapters are preferred) take
//!   over, with every waiting shard that shares them.
//! - Items of different adapters share the batch. A shard whose adapter is not held waits
//!   while the adapter loads (one load at a time, off the engine thread); the load is asked
//!   for only when the adapters pinned by queued or running items leave room for it.
//! - Meanwhile shards of held adapters pass it, at most [`MAX_PASSES`] of them, so it is never
//!   starved; without the held-adapter preference nothing passes it (first come, first
//!   served).
//! - An adapter is pinned while anything still holds its weights (a queued or running item),
//!   and only unpinned adapters are evicted, least recently used first.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};

use lorabeam_core::{ModelLimits, ValidDecodeParams};
use lorabeam_proto::queue::ShardMessage;

use super::adapter_cache::{AdapterCache, CacheError};

/// Shards of held adapters (or the bare base) that may pass one waiting for its adapter before
/// nothing passes it any more, so the batch drains and the waiting one gets its room.
pub const MAX_PASSES: usize = 64;

/// Whether something other than the cache still holds an adapter's weights.
pub trait Pinned {
    fn pinned(&self) -> bool;
}

/// Whether this worker can serve adapters at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterService {
    Served,
    /// Shards naming an adapter fail with this reason.
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub limits: ModelLimits,
    pub adapters: AdapterService,
    /// Bytes the prepared adapters may hold together.
    pub max_adapter_bytes: usize,
    /// Let shards of held adapters pass one waiting for its adapter.
    pub prefer_held: bool,
}

/// A claimed shard, numbered by the worker; `tag` comes back with each of its items (the
/// engine thread tags them with the shard's run span).
pub struct Shard<S> {
    pub seq: u32,
    pub message: ShardMessage,
    pub tag: S,
}

/// An item let into the batch.
#[derive(Debug)]
pub struct Admitted<A, S> {
    pub seq: u32,
    /// Its index in the shard.
    pub index: usize,
    pub context: Vec<u32>,
    pub first_step_context: Option<Vec<u32>>,
    /// The adapter's weights (`None`: the bare base).
    pub adapter: Option<A>,
    pub tag: S,
}

/// What the engine thread must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Read and prepare this adapter, then call [`Scheduler::adapter_loaded`].
    Load(String),
    /// These items of the shard fail with the reason.
    Fail { seq: u32, items: Vec<usize>, reason: String },
    /// An adapter entered the cache, and these were evicted for it (oldest first).
    Cached { adapter: String, bytes: usize, evicted: Vec<String>, held_bytes: usize },
}

/// A shard of known parameters, not yet in `ready`.
struct Queued<S> {
    seq: u32,
    message: ShardMessage,
    params: ValidDecodeParams,
    tag: S,
}

pub struct Scheduler<A, S> {
    config: SchedulerConfig,
    /// The running batch's parameters.
    params: Option<ValidDecodeParams>,
    /// Items of the running parameters whose adapter is held, in order.
    ready: VecDeque<Admitted<A, S>>,
    /// Shards of the running parameters waiting for their adapter, oldest first.
    waiting: VecDeque<Queued<S>>,
    /// Shards waiting for the batch to drain (other parameters, or behind one that has).
    later: VecDeque<Queued<S>>,
    /// The adapter being loaded (one at a time).
    loading: Option<String>,
    /// Shards placed ahead of the oldest waiting one.
    passed: usize,
    cache: AdapterCache<A>,
    /// Prepared size of every adapter loaded so far, to know whether one fits before loading it.
    sizes: HashMap<String, usize>,
    actions: Vec<Action>,
    /// Items that left the queues (admitted, failed or dropped) since [`Self::take_left`].
    left: usize,
}

impl<A: Pinned + Clone, S: Clone> Scheduler<A, S> {
    pub fn new(config: SchedulerConfig) -> Self {
        let cache = AdapterCache::new(config.max_adapter_bytes);
        Self {
            config,
            params: None,
            ready: VecDeque::new(),
            waiting: VecDeque::new(),
            later: VecDeque::new(),
            loading: None,
            passed: 0,
            cache,
            sizes: HashMap::new(),
            actions: Vec::new(),
            left: 0,
        }
    }

    /// A claimed shard arrives.
    pub fn shard(&mut self, shard: Shard<S>) {
        let Shard { seq, message, tag } = shard;
        let params = match message.params.validate(self.config.limits) {
            Ok(params) => params,
            Err(e) => {
                let reason = format!("decoding parameters do not fit this worker's model: {e}");
                return self.fail(seq, message.items.len(), reason);
            }
        };
        let queued = Queued { seq, message, params, tag };
        let params = self.params.get_or_insert_with(|| queued.params.clone());
        if self.later.is_empty() && same(params, &queued.params) {
            self.place(queued);
        } else {
            self.later.push_back(queued);
        }
    }

    /// The next item for the batch, if one is ready.
    pub fn next(&mut self) -> Option<Admitted<A, S>> {
        if self.ready.is_empty() {
            self.retry_waiting();
        }
        let item = self.ready.pop_front()?;
        self.left += 1;
        Some(item)
    }

    /// Whether an item is ready for the batch (a waiting shard may have found its adapter).
    pub fn has_ready(&mut self) -> bool {
        if self.ready.is_empty() {
            self.retry_waiting();
        }
        !self.ready.is_empty()
    }

    /// Whether the batch must drain so other parameters take over: nothing of the running ones
    /// is left.
    pub fn switch_pending(&self) -> bool {
        self.ready.is_empty() && self.waiting.is_empty() && !self.later.is_empty()
    }

    /// The tag of the item [`Self::next`] would give.
    pub fn next_tag(&self) -> Option<&S> {
        self.ready.front().map(|item| &item.tag)
    }

    /// The parameters the batch runs with.
    pub fn params(&self) -> Option<&ValidDecodeParams> {
        self.params.as_ref()
    }

    /// Called with the batch drained: moves on to the next waiting parameters when nothing of
    /// the running ones is left. Returns whether they changed.
    pub fn switch_params(&mut self) -> bool {
        if !self.ready.is_empty() || !self.waiting.is_empty() || self.later.is_empty() {
            return false;
        }
        let held = self.later.iter().position(|q| self.is_held(&q.message.adapter));
        let first = match held {
            Some(held) if self.config.prefer_held => held,
            _ => 0,
        };
        let Some(next) = self.later.remove(first) else { return false };
        self.params = Some(next.params.clone());
        self.place(next);
        for queued in std::mem::take(&mut self.later) {
            if self.params.as_ref().is_some_and(|p| same(p, &queued.params)) {
                self.place(queued);
            } else {
                self.later.push_back(queued);
            }
        }
        true
    }

    /// The result of an [`Action::Load`]: the prepared weights and their bytes, or why not.
    pub fn adapter_loaded(&mut self, name: &str, loaded: Result<(A, usize), String>) {
        if self.loading.as_deref() == Some(name) {
            self.loading = None;
        }
        let (weights, bytes) = match loaded {
            Ok(loaded) => loaded,
            Err(reason) => return self.fail_adapter(name, &reason),
        };
        self.sizes.insert(name.to_string(), bytes);
        match self.cache.insert(name, weights, bytes, A::pinned) {
            Ok(evicted) => {
                let held_bytes = self.cache.held_bytes();
                self.actions.push(Action::Cached { adapter: name.into(), bytes, evicted, held_bytes });
            }
            // Larger than its estimate, and what is pinned now leaves no room: dropped, and
            // loaded again (its size now known) once there is room.
            Err(CacheError::Busy { .. }) => {}
            Err(e @ CacheError::TooLarge { .. }) => return self.fail_adapter(name, &e.to_string()),
        }
        self.retry_waiting();
    }

    /// Shards the worker no longer runs (their job ended, or their lease went elsewhere): their
    /// items that did not enter the batch are dropped. Returns how many.
    pub fn drop_shards(&mut self, seqs: &HashSet<u32>) -> usize {
        let before = self.queued_items();
        self.ready.retain(|item| !seqs.contains(&item.seq));
        self.waiting.retain(|q| !seqs.contains(&q.seq));
        self.later.retain(|q| !seqs.contains(&q.seq));
        let dropped = before - self.queued_items();
        self.left += dropped;
        if self.waiting.is_empty() {
            self.passed = 0;
        }
        dropped
    }

    /// What the engine thread must do now, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// How many items left the queues since the last call.
    pub fn take_left(&mut self) -> usize {
        std::mem::take(&mut self.left)
    }

    /// Items held here, not yet in the batch.
    pub fn queued_items(&self) -> usize {
        let shards = |q: &VecDeque<Queued<S>>| q.iter().map(|q| q.message.items.len()).sum::<usize>();
        self.ready.len() + shards(&self.waiting) + shards(&self.later)
    }

    /// Whether a shard of `adapter` runs without loading anything ("" is the bare base).
    fn is_held(&self, adapter: &str) -> bool {
        adapter.is_empty() || self.cache.contains(adapter)
    }

    fn fail(&mut self, seq: u32, items: usize, reason: String) {
        self.left += items;
        self.actions.push(Action::Fail { seq, items: (0..items).collect(), reason });
    }

    /// A shard of the running parameters: its items become ready, or it waits for its adapter,
    /// or it fails when this worker serves no adapters.
    fn place(&mut self, queued: Queued<S>) {
        let nothing_passes = !self.config.prefer_held || self.passed >= MAX_PASSES;
        if !self.waiting.is_empty() && nothing_passes {
            self.waiting.push_back(queued);
            return;
        }
        let adapter = queued.message.adapter.clone();
        let weights = if adapter.is_empty() {
            None
        } else if let Some(weights) = self.cache.get(&adapter) {
            Some(weights)
        } else if let AdapterService::Unavailable(why) = &self.config.adapters {
            let reason = format!("adapter `{adapter}`: {why}");
            return self.fail(queued.seq, queued.message.items.len(), reason);
        } else {
            self.waiting.push_back(queued);
            return self.retry_waiting();
        };
        if !self.waiting.is_empty() {
            self.passed += 1;
        }
        let Queued { seq, message, tag, .. } = queued;
        for (index, item) in message.items.into_iter().enumerate() {
            self.ready.push_back(Admitted {
                seq,
                index,
                context: item.context,
                first_step_context: item.first_step_context,
                adapter: weights.clone(),
                tag: tag.clone(),
            });
        }
    }

    /// Places the waiting shards whose adapter is now held, oldest first, and asks for the
    /// oldest one's adapter when nothing loads and there is room for it.
    fn retry_waiting(&mut self) {
        while let Some(front) = self.waiting.front() {
            let adapter = front.message.adapter.clone();
            if self.is_held(&adapter) {
                if let Some(front) = self.waiting.pop_front() {
                    // Placed with nothing ahead of it.
                    let rest = std::mem::take(&mut self.waiting);
                    self.place(front);
                    self.waiting.extend(rest);
                }
                continue;
            }
            if self.loading.is_none() && self.has_room_for(&adapter) {
                self.loading = Some(adapter.clone());
                self.actions.push(Action::Load(adapter));
            }
            return;
        }
        self.passed = 0;
    }

    /// Whether loading `adapter` may start: with nothing pinned, anything is tried (the cache
    /// evicts what it must, or refuses one larger than its bound); otherwise its known size,
    /// or for a new one the largest seen, must fit beside what is pinned.
    fn has_room_for(&self, adapter: &str) -> bool {
        let estimate = self.sizes.get(adapter).copied().or_else(|| self.sizes.values().max().copied()).unwrap_or(0);
        self.cache.pinned_bytes(A::pinned) == 0 || self.cache.has_room(estimate, A::pinned)
    }

    /// Every queued shard naming `adapter` fails: it cannot be had.
    fn fail_adapter(&mut self, adapter: &str, reason: &str) {
        let mut failed = Vec::new();
        for queue in [&mut self.waiting, &mut self.later] {
            let (named, rest): (VecDeque<_>, VecDeque<_>) =
                std::mem::take(queue).into_iter().partition(|q| q.message.adapter == adapter);
            *queue = rest;
            failed.extend(named);
        }
        for queued in failed {
            self.fail(queued.seq, queued.message.items.len(), reason.to_string());
        }
        self.retry_waiting();
    }
}

fn same(a: &ValidDecodeParams, b: &ValidDecodeParams) -> bool {
    let (a, b): (&lorabeam_core::DecodeParams, &lorabeam_core::DecodeParams) = (a, b);
    a == b
}
