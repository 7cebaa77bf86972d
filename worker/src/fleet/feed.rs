//! The engine thread: shards come in on a channel and feed one continuous batch across shard
//! boundaries; results go out as soon as each item is final.
//!
//! The batch shares one set of decoding parameters, so a shard with other parameters waits
//! until the batch drains. Items of different adapters share the batch; a shard whose adapter
//! has no room in the cache (the adapters in use fill it) waits while shards of held adapters
//! pass it (at most [`MAX_PASSES`] of them, so it is never starved), which keeps a sweep from
//! thrashing the cache. An engine error retries each affected item alone, so one poison
//! record fails by itself instead of taking its batch-mates down.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lorabeam_core::{DecodeParams, ModelLimits, ValidDecodeParams};
use lorabeam_proto::queue::ShardMessage;
use tokio::sync::mpsc::UnboundedSender;

use lorabeam_proto::telemetry::int;
use tracing::{field::Empty, info_span, Span};

use super::adapters::{AdapterConfig, Adapters, Lookup};
use super::batch_trace::BatchTrace;
use super::in_use::{InUse, Outbox};
use super::metrics::METRICS;
use crate::generation::{Engine, EngineStats, ItemSource, WorkItem};
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

/// Into the engine thread.
pub enum FeedMessage {
    /// A shard and its run span, under which its decode batches are traced.
    Shard {
        seq: u32,
        shard: Box<ShardMessage>,
        span: Span,
    },
    Stop,
}

/// What the reporter hears, in the order things happened.
#[derive(Debug)]
pub enum FeedOutput {
    /// Sent by the claimer before the shard enters the feed, so the reporter knows a shard
    /// before any of its results.
    Claimed {
        seq: u32,
        claimed: Box<super::queue::Claimed>,
        span: Span,
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

/// State shared with the claimer and reporter.
#[derive(Default)]
pub struct FeedShared {
    /// Items handed to the engine thread and not yet admitted to the batch.
    pub waiting_items: AtomicUsize,
    /// Jobs whose remaining items are skipped (cancelled or gone).
    pub dropped_jobs: Mutex<HashSet<String>>,
}

/// Shards of held adapters (or the bare base) that may pass one waiting for cache room before
/// the feed stops taking new shards, so the batch drains and the waiting one gets its room.
pub const MAX_PASSES: usize = 64;

/// A key packs the shard's local sequence number and the item's index in it.
pub(super) fn key(seq: u32, index: usize) -> usize {
    ((seq as usize) << 32) | index
}

pub(super) fn unkey(key: usize) -> (u32, usize) {
    ((key >> 32) as u32, key & 0xffff_ffff)
}

/// A shard not yet queued for the batch.
struct Waiting {
    seq: u32,
    shard: ShardMessage,
    params: ValidDecodeParams,
    span: Span,
}

struct Feed<'m> {
    inbox: Receiver<FeedMessage>,
    out: Outbox,
    shared: Arc<FeedShared>,
    limits: ModelLimits,
    /// The model adapters merge into (`None` for the echo engine).
    model: Option<&'m Gpt2>,
    adapters: Adapters,
    /// Items of the parameters now running, with their job and shard span.
    ready: VecDeque<(WorkItem, String, Span)>,
    params: Option<ValidDecodeParams>,
    /// Shards with other parameters, waiting for the batch to drain.
    later: VecDeque<Waiting>,
    /// Shards of the running parameters whose adapter has no room in the cache yet.
    no_room: VecDeque<Waiting>,
    /// Shards queued ahead of the oldest one in `no_room`.
    passed: usize,
    stopping: bool,
    /// Each shard's share of the running batch (shared with the engine's result callback).
    trace: Arc<Mutex<BatchTrace>>,
}

impl Feed<'_> {
    /// Takes one message in: a shard joins the running parameters' queue, or waits in `later`.
    fn accept(&mut self, message: FeedMessage) {
        let (seq, shard, span) = match message {
            FeedMessage::Shard { seq, shard, span } => (seq, *shard, span),
            FeedMessage::Stop => {
                self.stopping = true;
                return;
            }
        };
        match shard.params.validate(self.limits) {
            Ok(params) => {
                if self.params.is_none() {
                    self.params = Some(params.clone());
                }
                let waiting = Waiting { seq, shard, params, span };
                if self.params.as_ref().is_some_and(|p| same(p, &waiting.params)) {
                    self.place(waiting);
                } else {
                    self.later.push_back(waiting);
                }
            }
            Err(e) => self.fail(&shard, seq, &format!("decoding parameters do not fit this worker's model: {e}")),
        }
    }

    /// A shard's items fail before they reach the batch.
    fn fail(&mut self, shard: &ShardMessage, seq: u32, reason: &str) {
        self.shared.waiting_items.fetch_sub(shard.items.len(), Ordering::SeqCst);
        for index in 0..shard.items.len() {
            self.out.send(FeedOutput::Failed { seq, index, reason: reason.to_string() });
        }
    }

    /// A shard of the running parameters: queued with its adapter, or waiting for room for it,
    /// or failed when its adapter cannot be had. Without the held-adapter preference nothing
    /// passes a waiting shard (first come, first served).
    fn place(&mut self, waiting: Waiting) {
        if !self.no_room.is_empty() && !self.adapters.prefer_held() {
            self.no_room.push_back(waiting);
            return;
        }
        let adapter = waiting.shard.adapter.clone();
        let weights = if adapter.is_empty() {
            None
        } else {
            match self.adapters.lookup(self.model, &adapter) {
                Lookup::Ready(weights) => Some(weights),
                Lookup::Wait => {
                    tracing::debug!(%adapter, shard_id = %waiting.shard.shard_id, "waiting for room in the adapter cache");
                    self.no_room.push_back(waiting);
                    return;
                }
                Lookup::Failed(reason) => {
                    tracing::warn!(job_id = %waiting.shard.job_id, %reason, "failing a shard");
                    return self.fail(&waiting.shard, waiting.seq, &reason);
                }
            }
        };
        if !self.no_room.is_empty() {
            self.passed += 1;
        }
        let Waiting { seq, shard, span, .. } = waiting;
        for (index, item) in shard.items.into_iter().enumerate() {
            let key = key(seq, index);
            if weights.is_some() {
                self.out.in_use().hold(key, &adapter);
            }
            let work = WorkItem {
                key,
                context: item.context,
                first_step_context: item.first_step_context,
                adapter: weights.clone(),
            };
            self.ready.push_back((work, shard.job_id.clone(), span.clone()));
        }
    }

    /// Tries the shards waiting for cache room again, oldest first, while they find it.
    fn retry_no_room(&mut self) {
        while let Some(waiting) = self.no_room.pop_front() {
            // Placed with nothing ahead of it: it either finds room or waits first again.
            let rest = std::mem::take(&mut self.no_room);
            self.place(waiting);
            let placed = self.no_room.is_empty();
            self.no_room.extend(rest);
            if !placed {
                return;
            }
        }
        self.passed = 0;
    }

    /// Whether new shards must wait (so the batch drains): a shard with other parameters, or
    /// one that has waited for cache room long enough.
    fn blocked(&self) -> bool {
        let starving = !self.no_room.is_empty() && (!self.adapters.prefer_held() || self.passed >= MAX_PASSES);
        !self.later.is_empty() || starving
    }

    /// With the batch drained, moves on to the next waiting parameters and their shards: those
    /// of a held adapter first.
    fn switch_params(&mut self) {
        let first = match self.later.iter().position(|w| self.adapters.is_held(&w.shard.adapter)) {
            Some(held) if self.adapters.prefer_held() => held,
            _ => 0,
        };
        let Some(next) = self.later.remove(first) else { return };
        self.params = Some(next.params.clone());
        self.place(next);
        let mut others = VecDeque::new();
        while let Some(waiting) = self.later.pop_front() {
            if self.params.as_ref().is_some_and(|p| same(p, &waiting.params)) {
                self.place(waiting);
            } else {
                others.push_back(waiting);
            }
        }
        self.later = others;
    }

    /// Blocks until a message arrives (or a moment passes, to notice a stop).
    fn wait(&mut self, timeout: Duration) {
        match self.inbox.recv_timeout(timeout) {
            Ok(message) => self.accept(message),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.stopping = true,
        }
    }

    fn dropped(&self, job_id: &str) -> bool {
        self.shared.dropped_jobs.lock().map(|d| d.contains(job_id)).unwrap_or(false)
    }
}

fn same(a: &ValidDecodeParams, b: &ValidDecodeParams) -> bool {
    let (a, b): (&DecodeParams, &DecodeParams) = (a, b);
    a == b
}

impl ItemSource for Feed<'_> {
    fn next_item(&mut self, idle: bool) -> Option<WorkItem> {
        loop {
            if self.ready.is_empty() && !self.no_room.is_empty() {
                self.retry_no_room();
            }
            while let Some((item, job_id, run_span)) = self.ready.pop_front() {
                self.shared.waiting_items.fetch_sub(1, Ordering::SeqCst);
                if !self.dropped(&job_id) {
                    if let Ok(mut trace) = self.trace.lock() {
                        trace.admit(unkey(item.key).0, &run_span);
                    }
                    return Some(item);
                }
                self.out.in_use().release(item.key);
            }
            // Shards with other parameters, or one long without cache room, wait for this
            // batch to drain.
            if self.blocked() || self.stopping {
                return None;
            }
            if idle {
                // Nothing runs: wait briefly for the next shard rather than end the run.
                self.wait(Duration::from_millis(50));
                if self.ready.is_empty() {
                    return None;
                }
                continue;
            }
            match self.inbox.try_recv() {
                Ok(message) => self.accept(message),
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.stopping = true,
            }
        }
    }
}

/// Runs the engine thread until told to stop.
pub fn run_feed(
    decoder: Decoder,
    adapters: AdapterConfig,
    inbox: Receiver<FeedMessage>,
    out: UnboundedSender<FeedOutput>,
    shared: Arc<FeedShared>,
) {
    let limits = decoder.limits();
    let in_use = Arc::new(InUse::default());
    let model = match &decoder {
        Decoder::Model { model, .. } => Some(&**model),
        Decoder::Echo => None,
    };
    let mut feed = Feed {
        inbox,
        out: Outbox::new(out, in_use.clone()),
        shared,
        limits,
        model,
        adapters: Adapters::new(adapters, in_use),
        ready: VecDeque::new(),
        params: None,
        later: VecDeque::new(),
        no_room: VecDeque::new(),
        passed: 0,
        stopping: false,
        trace: Arc::default(),
    };
    // After a stop the batch finishes what it holds; items not yet admitted are left to the
    // reporter, which releases their shards.
    while !feed.stopping {
        if feed.ready.is_empty() {
            // Nothing runs: a shard waiting for cache room finds it now.
            feed.retry_no_room();
        }
        if feed.ready.is_empty() {
            if feed.later.is_empty() {
                feed.wait(Duration::from_millis(200));
                continue;
            }
            feed.switch_params();
        }
        let Some(params) = feed.params.clone() else { continue };
        // A batch mixes shards: it is traced under the shard that opened it, linked to every
        // shard it serves, and each shard traces its own share (see batch_trace).
        let parent = feed.ready.front().map(|(_, _, span)| span.clone()).unwrap_or_else(Span::none);
        let span = info_span!(
            parent: &parent,
            "decode_batch",
            rows = Empty,
            steps = Empty,
            tokens = Empty,
            items = Empty,
            shards = Empty
        );
        if let Ok(mut trace) = feed.trace.lock() {
            trace.start(span.clone());
        }
        let _entered = span.enter();
        let stats = match &decoder {
            Decoder::Echo => echo(&mut feed, &params),
            Decoder::Model { model, budget } => decode(&mut feed, model, params, *budget),
        };
        let shards = feed.trace.lock().map(|mut trace| trace.finish()).unwrap_or(0);
        span.record("rows", int(stats.peak_rows));
        span.record("steps", int(stats.decode_steps));
        span.record("tokens", int(stats.generated_tokens));
        span.record("items", int(stats.items));
        span.record("shards", int(shards));
    }
    feed.out.send(FeedOutput::Stopped);
}

fn echo(feed: &mut Feed<'_>, params: &ValidDecodeParams) -> EngineStats {
    let mut stats = EngineStats::default();
    while let Some(item) = feed.next_item(false) {
        let mut predict: Vec<u32> = item.context.iter().copied().take(params.eval_len).collect();
        // Padded as the engine pads: nothing but zeros after the first end of sequence.
        if let Some(eos) = predict.iter().position(|&t| params.is_eos(t)) {
            predict.truncate(eos + 1);
        }
        predict.resize(params.eval_len, 0);
        let (seq, index) = unkey(item.key);
        item_done(&feed.trace, seq, 0);
        feed.out.send(FeedOutput::Predicted { seq, index, predict, generated_tokens: 0 });
        stats.items += 1;
    }
    stats
}

fn observe_step(duration: Duration, _rows: usize) {
    METRICS.decode_step_seconds.observe(duration.as_secs_f64());
}

/// How the model decodes: its batch budgets and how often an item that broke the engine is
/// retried alone before it is reported failed.
#[derive(Debug, Clone, Copy)]
pub struct ModelBudget {
    pub max_rows: usize,
    pub kv_budget_bytes: Option<usize>,
    pub item_retries: usize,
}

fn decode(feed: &mut Feed<'_>, model: &Gpt2, params: ValidDecodeParams, budget: ModelBudget) -> EngineStats {
    let mut engine = Engine::new(model, params, budget.max_rows).with_step_observer(&observe_step);
    if let Some(bytes) = budget.kv_budget_bytes {
        engine = engine.with_kv_budget(bytes);
    }
    let admitted: Arc<Mutex<HashMap<usize, WorkItem>>> = Arc::default();
    let out = feed.out.clone();
    let trace = feed.trace.clone();
    let mut source = Tracking { feed, admitted: admitted.clone(), engine: &engine };
    let result = engine.run_source(&mut source, |key, predict, generated| {
        if let Ok(mut admitted) = admitted.lock() {
            admitted.remove(&key);
        }
        let (seq, index) = unkey(key);
        // The share closes before its result leaves, so its span ends before the job does.
        item_done(&trace, seq, generated as u64);
        out.send(FeedOutput::Predicted { seq, index, predict, generated_tokens: generated as u64 });
    });
    let error = match result {
        Ok(stats) => return stats,
        Err(error) => error,
    };
    METRICS.errors.with_label_values(&["engine"]).inc();
    // Retry each interrupted item alone, a bounded number of times: only an item that fails
    // by itself every time is failed, and the rest of its batch completes.
    let interrupted: Vec<WorkItem> =
        admitted.lock().map(|mut a| a.drain().map(|(_, v)| v).collect()).unwrap_or_default();
    tracing::warn!(%error, items = interrupted.len(), "engine error; retrying the batch's items one by one");
    for item in interrupted {
        let (seq, index) = unkey(item.key);
        let mut last_error = error.to_string();
        let mut done = false;
        for _ in 0..budget.item_retries {
            let alone = engine.run(std::iter::once(item.clone()), |_, predict| {
                done = true;
                out.send(FeedOutput::Predicted { seq, index, predict, generated_tokens: 0 });
            });
            match alone {
                Ok(_) if done => break,
                Ok(_) => last_error = "the engine returned no result".into(),
                Err(e) => last_error = e.to_string(),
            }
        }
        if !done {
            let reason = format!("engine error after {} tries alone: {last_error}", budget.item_retries);
            out.send(FeedOutput::Failed { seq, index, reason });
        }
        item_done(&trace, seq, 0);
    }
    EngineStats::default()
}

fn item_done(trace: &Mutex<BatchTrace>, seq: u32, tokens: u64) {
    if let Ok(mut trace) = trace.lock() {
        trace.done(seq, tokens);
    }
}

/// Remembers which items are in the batch, to retry them after an engine error, and fails at
/// once the items that could never fit the KV budget.
struct Tracking<'f, 'e, 'm> {
    feed: &'f mut Feed<'m>,
    admitted: Arc<Mutex<HashMap<usize, WorkItem>>>,
    engine: &'e Engine<'e>,
}

impl ItemSource for Tracking<'_, '_, '_> {
    fn next_item(&mut self, idle: bool) -> Option<WorkItem> {
        loop {
            let item = self.feed.next_item(idle)?;
            if let Some(reason) = self.engine.exceeds_budget(&item) {
                let (seq, index) = unkey(item.key);
                item_done(&self.feed.trace, seq, 0);
                self.feed.out.send(FeedOutput::Failed { seq, index, reason });
                continue;
            }
            if let Ok(mut admitted) = self.admitted.lock() {
                admitted.insert(item.key, item.clone());
            }
            return Some(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(unkey(key(7, 123)), (7, 123));
        assert_eq!(unkey(key(u32::MAX, 0xffff_ffff)), (u32::MAX, 0xffff_ffff));
    }
}
