//! The engine thread: owns the [`Scheduler`] and the model, and does the scheduler's I/O. Its
//! inbox brings shards (from the reporter, which owns the worker's shards), shards to drop,
//! and adapters read by the loader thread; results go out to the reporter as soon as each item
//! is final. The engine keeps one continuous batch across shard boundaries ([`super::decode`]).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lorabeam_core::ValidDecodeParams;
use lorabeam_proto::telemetry::int;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{field::Empty, info_span, Span};

use super::adapter_book::AdapterBook;
use super::adapters::{AdapterConfig, AdapterLoader, AdapterRead, Loaded};
use super::batch_trace::BatchTrace;
use super::decode::{decode, echo, Batch};
use super::messages::{key, Decoder, FeedMessage, FeedOutput, FeedShared};
use super::metrics::METRICS;
use super::scheduler::{Action, AdapterService, Pinned, Scheduler, SchedulerConfig, Shard};
use crate::generation::{ItemSource, WorkItem};
use crate::model::{AdapterWeights, Gpt2, PrepareTarget};

impl Pinned for AdapterWeights {
    fn pinned(&self) -> bool {
        self.is_shared()
    }
}

/// The engine thread's state around its scheduler.
struct Feed<'m> {
    inbox: Receiver<FeedMessage>,
    out: UnboundedSender<FeedOutput>,
    shared: Arc<FeedShared>,
    model: Option<&'m Gpt2>,
    scheduler: Scheduler<AdapterWeights, Span>,
    loader: Option<AdapterLoader>,
    stopping: bool,
    /// Each shard's share of the running batch (shared with the engine's result callback).
    trace: Arc<Mutex<BatchTrace>>,
}

impl Feed<'_> {
    /// Sends one output; a reporter gone away has stopped listening, so there is nothing to do.
    fn send(&self, output: FeedOutput) {
        let _ = self.out.send(output);
    }

    fn receive(&mut self, message: FeedMessage) {
        match message {
            FeedMessage::Shard { seq, shard, span } => {
                self.scheduler.shard(Shard { seq, message: *shard, tag: span });
            }
            FeedMessage::Drop { seqs } => {
                let dropped = self.scheduler.drop_shards(&seqs);
                tracing::debug!(shards = seqs.len(), items = dropped, "dropped shards the worker no longer runs");
            }
            FeedMessage::AdapterRead { name, read, took } => self.prepare(name, *read, took),
            FeedMessage::Stop => self.stopping = true,
        }
        self.act();
    }

    /// Takes an adapter the loader thread loaded: prepared there already (the low-rank form),
    /// or read and prepared here, from the model's weights (merged copies).
    fn prepare(&mut self, name: String, read: AdapterRead, took: Duration) {
        let prepared = match (read, self.model) {
            (Ok(Loaded::Prepared(weights)), _) => Ok(weights),
            (Ok(Loaded::Read(adapter)), Some(model)) => AdapterWeights::prepare(model, &adapter, &name)
                .map_err(|e| format!("adapter `{name}` cannot be prepared for this model: {e}")),
            (Ok(Loaded::Read(_)), None) => {
                Err(format!("adapter `{name}`: this worker runs without a model (--engine echo)"))
            }
            (Err(reason), _) => Err(reason),
        };
        let prepared = prepared.map(|weights| (weights.clone(), weights.bytes()));
        if let Ok((_, bytes)) = &prepared {
            METRICS.adapter_loads.inc();
            tracing::info!(adapter = %name, mib = *bytes as f64 / (1 << 20) as f64, read_seconds = took.as_secs_f64(), "loaded adapter");
        }
        self.scheduler.adapter_loaded(&name, prepared);
    }

    /// Carries out the scheduler's actions, and tells the claimer about room.
    fn act(&mut self) {
        loop {
            let actions = self.scheduler.take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.carry_out(action);
            }
        }
        self.shared.items_left(self.scheduler.take_left());
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Load(name) => {
                if !self.loader.as_ref().is_some_and(|loader| loader.request(&name)) {
                    let reason = format!("adapter `{name}`: the worker's adapter loader stopped");
                    self.scheduler.adapter_loaded(&name, Err(reason));
                }
            }
            Action::Fail { seq, items, reason } => {
                tracing::warn!(seq, items = items.len(), %reason, "failing a shard's items before the batch");
                for index in items {
                    self.send(FeedOutput::Failed { seq, index, reason: reason.clone() });
                }
            }
            Action::Cached { adapter, evicted, held_bytes, .. } => {
                if !evicted.is_empty() {
                    tracing::info!(%adapter, ?evicted, "evicted adapters to make room");
                }
                METRICS.adapter_evictions.inc_by(evicted.len() as u64);
                METRICS.adapter_bytes.set(held_bytes as i64);
            }
        }
    }

    /// Takes in every message already there, without waiting.
    fn poll(&mut self) {
        loop {
            match self.inbox.try_recv() {
                Ok(message) => self.receive(message),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => return self.stopping = true,
            }
        }
    }

    /// Waits up to `timeout` for one message, then takes in the rest.
    fn wait(&mut self, timeout: Duration) {
        match self.inbox.recv_timeout(timeout) {
            Ok(message) => self.receive(message),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.stopping = true,
        }
        self.poll();
    }

    /// The next item for the batch, traced into its shard's share.
    fn admit(&mut self) -> Option<WorkItem> {
        let item = self.scheduler.next()?;
        self.act();
        if let Ok(mut trace) = self.trace.lock() {
            trace.admit(item.seq, &item.tag);
        }
        Some(WorkItem {
            key: key(item.seq, item.index),
            context: item.context,
            first_step_context: item.first_step_context,
            adapter: item.adapter,
        })
    }
}

impl Batch for Feed<'_> {
    fn outbox(&self) -> &UnboundedSender<FeedOutput> {
        &self.out
    }

    fn trace(&self) -> &Arc<Mutex<BatchTrace>> {
        &self.trace
    }
}

impl ItemSource for Feed<'_> {
    fn next_item(&mut self, idle: bool) -> Option<WorkItem> {
        self.poll();
        loop {
            if let Some(item) = self.admit() {
                return Some(item);
            }
            // Mid-run nothing waits; a drained batch ends its run when other parameters wait.
            if !idle || self.stopping || self.scheduler.switch_pending() {
                return None;
            }
            // Nothing runs: wait briefly for the next shard (or an adapter) before ending the run.
            self.wait(Duration::from_millis(50));
            if !self.scheduler.has_ready() {
                return None;
            }
        }
    }
}

/// Runs the engine thread until told to stop.
pub fn run_feed(
    decoder: Decoder,
    adapters: AdapterConfig,
    book: Box<dyn AdapterBook>,
    inbox: Receiver<FeedMessage>,
    replies: Sender<FeedMessage>,
    out: UnboundedSender<FeedOutput>,
    shared: Arc<FeedShared>,
) {
    let model = match &decoder {
        Decoder::Model { model, .. } => Some(&**model),
        Decoder::Echo => None,
    };
    let (service, loader) = adapter_service(model, adapters.clone(), book, replies);
    let config = SchedulerConfig {
        limits: decoder.limits(),
        adapters: service,
        max_adapter_bytes: adapters.max_bytes,
        prefer_held: adapters.prefer_held,
    };
    let mut feed = Feed {
        inbox,
        out,
        shared,
        model,
        scheduler: Scheduler::new(config),
        loader,
        stopping: false,
        trace: Arc::default(),
    };
    // After a stop the batch finishes what it holds; items not yet admitted are left to the
    // reporter, which releases their shards.
    while !feed.stopping {
        feed.poll();
        // The batch is drained here: the next parameters may take over.
        let ready = feed.scheduler.has_ready() || (feed.scheduler.switch_params() && feed.scheduler.has_ready());
        feed.act();
        if !ready {
            feed.wait(Duration::from_millis(200));
            continue;
        }
        let Some(params) = feed.scheduler.params().cloned() else { continue };
        run_batch(&mut feed, &decoder, params);
    }
    feed.send(FeedOutput::Stopped);
}

/// Whether this worker serves adapters, and the thread that reads them.
fn adapter_service(
    model: Option<&Gpt2>,
    adapters: AdapterConfig,
    book: Box<dyn AdapterBook>,
    replies: Sender<FeedMessage>,
) -> (AdapterService, Option<AdapterLoader>) {
    let Some(model) = model else {
        return (AdapterService::Unavailable("this worker runs without a model (--engine echo)".into()), None);
    };
    if adapters.source.shown().is_none() {
        let why = "this worker has no --adapter-dir, so it serves only its bare base";
        return (AdapterService::Unavailable(why.into()), None);
    }
    let reply = move |name, read, took| {
        let _ = replies.send(FeedMessage::AdapterRead { name, read: Box::new(read), took });
    };
    match AdapterLoader::spawn(adapters, model.config().clone(), PrepareTarget::of(model), book, reply) {
        Ok(loader) => (AdapterService::Served, Some(loader)),
        Err(e) => (AdapterService::Unavailable(format!("cannot start the adapter loader thread: {e}")), None),
    }
}

/// One engine run over the batch, until it drains. A batch mixes shards: it is traced under the
/// shard that opened it, linked to every shard it serves, and each shard traces its own share.
fn run_batch(feed: &mut Feed<'_>, decoder: &Decoder, params: ValidDecodeParams) {
    let parent = feed.scheduler.next_tag().cloned().unwrap_or_else(Span::none);
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
    let stats = match decoder {
        Decoder::Echo => echo(feed, &params),
        Decoder::Model { model, budget } => decode(feed, model, params, *budget),
    };
    let shards = feed.trace.lock().map(|mut trace| trace.finish()).unwrap_or(0);
    span.record("rows", int(stats.peak_rows));
    span.record("steps", int(stats.decode_steps));
    span.record("tokens", int(stats.generated_tokens));
    span.record("items", int(stats.items));
    span.record("shards", int(shards));
}

#[cfg(test)]
mod tests {
    use super::super::messages::unkey;
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(unkey(key(7, 123)), (7, 123));
        assert_eq!(unkey(key(u32::MAX, 0xffff_ffff)), (u32::MAX, 0xffff_ffff));
    }
}
