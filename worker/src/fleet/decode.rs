//! One engine run on the engine thread: the model's continuous batch fed by the scheduler, or
//! the echo decoder. An engine error retries each interrupted item alone, so one poison record
//! fails by itself instead of taking its batch-mates down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lorabeam_core::ValidDecodeParams;
use tokio::sync::mpsc::UnboundedSender;

use super::batch_trace::BatchTrace;
use super::messages::{unkey, FeedOutput, ModelBudget};
use super::metrics::METRICS;
use crate::generation::{Engine, EngineStats, ItemSource, WorkItem};
use crate::model::Gpt2;

/// What an engine run needs of the engine thread: the items, the way out to the reporter, and
/// the batch's trace.
pub(super) trait Batch: ItemSource {
    fn outbox(&self) -> &UnboundedSender<FeedOutput>;
    fn trace(&self) -> &Arc<Mutex<BatchTrace>>;
}

/// Predicts the first `eval_len` context tokens of every item, padded as the engine pads.
pub(super) fn echo(feed: &mut impl Batch, params: &ValidDecodeParams) -> EngineStats {
    let mut stats = EngineStats::default();
    while let Some(item) = feed.next_item(false) {
        let mut predict: Vec<u32> = item.context.iter().copied().take(params.eval_len).collect();
        // Nothing but zeros after the first end of sequence.
        if let Some(eos) = predict.iter().position(|&t| params.is_eos(t)) {
            predict.truncate(eos + 1);
        }
        predict.resize(params.eval_len, 0);
        let (seq, index) = unkey(item.key);
        item_done(feed.trace(), seq, 0);
        let _ = feed.outbox().send(FeedOutput::Predicted { seq, index, predict, generated_tokens: 0 });
        stats.items += 1;
    }
    stats
}

fn observe_step(duration: Duration, rows: usize) {
    METRICS.decode_step_seconds.observe(duration.as_secs_f64());
    METRICS.batch_rows.set(i64::try_from(rows).unwrap_or(i64::MAX));
}

/// Runs the model until the batch drains.
pub(super) fn decode(
    feed: &mut impl Batch,
    model: &Gpt2,
    params: ValidDecodeParams,
    budget: ModelBudget,
) -> EngineStats {
    let mut engine = Engine::new(model, params, budget.max_rows).with_step_observer(&observe_step);
    if let Some(bytes) = budget.kv_budget_bytes {
        engine = engine.with_kv_budget(bytes);
    }
    let admitted: Arc<Mutex<HashMap<usize, WorkItem>>> = Arc::default();
    let out = feed.outbox().clone();
    let trace = feed.trace().clone();
    let mut source = Tracking { feed, admitted: admitted.clone(), engine: &engine };
    let result = engine.run_source(&mut source, |key, predict, generated| {
        if let Ok(mut admitted) = admitted.lock() {
            admitted.remove(&key);
        }
        let (seq, index) = unkey(key);
        // The share closes before its result leaves, so its span ends before the job does.
        item_done(&trace, seq, generated as u64);
        let _ = out.send(FeedOutput::Predicted { seq, index, predict, generated_tokens: generated as u64 });
    });
    // The batch drained (or failed): no rows in use until the next one steps.
    METRICS.batch_rows.set(0);
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
                let _ = out.send(FeedOutput::Predicted { seq, index, predict, generated_tokens: 0 });
            });
            match alone {
                Ok(_) if done => break,
                Ok(_) => last_error = "the engine returned no result".into(),
                Err(e) => last_error = e.to_string(),
            }
        }
        if !done {
            let reason = format!("engine error after {} tries alone: {last_error}", budget.item_retries);
            let _ = out.send(FeedOutput::Failed { seq, index, reason });
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
struct Tracking<'f, 'e, B> {
    feed: &'f mut B,
    admitted: Arc<Mutex<HashMap<usize, WorkItem>>>,
    engine: &'e Engine<'e>,
}

impl<B: Batch> ItemSource for Tracking<'_, '_, B> {
    fn next_item(&mut self, idle: bool) -> Option<WorkItem> {
        loop {
            let item = self.feed.next_item(idle)?;
            if let Some(reason) = self.engine.exceeds_budget(&item) {
                let (seq, index) = unkey(item.key);
                item_done(self.feed.trace(), seq, 0);
                let _ = self.feed.outbox().send(FeedOutput::Failed { seq, index, reason });
                continue;
            }
            if let Ok(mut admitted) = self.admitted.lock() {
                admitted.insert(item.key, item.clone());
            }
            return Some(item);
        }
    }
}
