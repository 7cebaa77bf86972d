//! The fleet worker: claims shards of its model from Redis, keeps the engine's continuous
//! batch full across shards, streams results to the coordinator, and acks a shard only once
//! the coordinator confirms it holds every result.
//!
//! Three parts run at once: the claimer (an async task), the engine (its own thread, see
//! [`feed`]) and the [`reporter`] (an async task that owns the coordinator stream). The engine
//! thread also owns the worker's adapters ([`adapters`], cached by [`adapter_cache`]): a shard
//! names its adapter, found under `--adapter-dir` and prepared for the one base on first use.

pub mod adapter_cache;
mod adapters;
mod batch_trace;
mod feed;
mod heartbeat;
mod in_use;
pub mod metrics;
mod queue;
mod reporter;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lorabeam_proto::queue::Keys;
use lorabeam_proto::telemetry::{int, parent_from_traceparent};
use tracing::{info_span, Instrument};

pub use adapters::AdapterConfig;
use feed::{run_feed, FeedMessage, FeedOutput, FeedShared};
pub use feed::{Decoder, ModelBudget};
use metrics::METRICS;
use queue::ShardQueue;
use reporter::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Connect(#[from] lorabeam_proto::connect::ConnectError),
    #[error("coordinator refused the report stream: {0}")]
    Refused(#[from] tonic::Status),
    #[error("cannot start the engine thread: {0}")]
    EngineThread(std::io::Error),
    #[error("the engine thread stopped unexpectedly")]
    EngineStopped,
}

/// How a worker joins the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub redis_url: String,
    /// The coordinator's gRPC URL, e.g. `http://coordinator:50051`.
    pub coordinator: String,
    pub model_id: String,
    pub key_prefix: String,
    /// This worker's consumer name in the group (unique per worker).
    pub consumer: String,
    /// A shard whose lease is not renewed for this long goes to another worker.
    pub lease: Duration,
    /// How often the worker's heartbeat is written to Redis (it expires after a few).
    pub heartbeat: Duration,
    /// After SIGTERM: time to finish in-flight shards before releasing them.
    pub grace: Duration,
    /// Items queued ahead of the batch before claiming stops.
    pub prefetch_items: usize,
    /// Most shards held (claimed, not yet confirmed) at once.
    pub max_shards: usize,
    /// A shard delivered more often than this (its workers kept dying on it) has its items
    /// failed instead of being run again.
    pub max_deliveries: u64,
    pub max_message_bytes: usize,
    /// TLS towards the coordinator (`https://` URLs).
    pub tls: lorabeam_proto::connect::ClientTls,
    /// The worker role's bearer token.
    pub token: lorabeam_proto::connect::BearerToken,
    /// A CA for a `rediss://` Redis signed by a private CA.
    pub redis_ca: Option<std::path::PathBuf>,
    /// Where adapters are found and how many are kept.
    pub adapters: AdapterConfig,
}

/// What the claimer and reporter share.
#[derive(Clone)]
pub(crate) struct Fleet {
    config: Arc<FleetConfig>,
    queue: ShardQueue,
    feed: Arc<FeedShared>,
    inflight_shards: Arc<AtomicUsize>,
    /// What the worker registered for its model, registered again if Redis loses it.
    limits: lorabeam_core::ModelLimits,
}

/// Runs a worker until `shutdown` resolves and its shards are confirmed or released.
pub async fn run(
    config: FleetConfig,
    decoder: Decoder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FleetError> {
    let keys = Keys::new(&config.key_prefix);
    let redis = lorabeam_proto::connect::redis_client(&config.redis_url, config.redis_ca.as_deref())?;
    let queue = ShardQueue::connect(redis, keys, &config.model_id, config.consumer.clone(), config.lease).await?;
    queue.register_model(&config.model_id, decoder.limits()).await?;
    let beat_config = heartbeat::HeartbeatConfig {
        worker: config.consumer.clone(),
        model_id: config.model_id.clone(),
        max_rows: u32::try_from(decoder.max_rows()).unwrap_or(u32::MAX),
        every: config.heartbeat,
    };
    let (beat_stop, beat_stopped) = tokio::sync::watch::channel(false);
    let beating = tokio::spawn(heartbeat::beat(queue.clone(), beat_config, beat_stopped));
    let fleet = Fleet {
        config: Arc::new(config),
        queue,
        feed: Arc::default(),
        inflight_shards: Arc::default(),
        limits: decoder.limits(),
    };
    let (feed_tx, feed_rx) = std::sync::mpsc::channel();
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = {
        let (out_tx, shared) = (out_tx.clone(), fleet.feed.clone());
        let adapters = fleet.config.adapters.clone();
        std::thread::Builder::new()
            .name("lorabeam-engine".into())
            .spawn(move || run_feed(decoder, adapters, feed_rx, out_tx, shared))
            .map_err(FleetError::EngineThread)?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let claimer = tokio::spawn(claim_loop(fleet.clone(), feed_tx.clone(), out_tx, stop_rx.clone()));
    tracing::info!(model_id = %fleet.config.model_id, consumer = %fleet.config.consumer, "worker ready");
    let reported = Reporter::new(fleet).run(out_rx, stop_rx).await;
    claimer.abort();
    // The heartbeat goes last: until then the worker holds (and renews) leases.
    let _ = beat_stop.send(true);
    if tokio::time::timeout(Duration::from_secs(2), beating).await.is_err() {
        tracing::warn!("could not remove the heartbeat in time; it expires by itself");
    }
    let _ = feed_tx.send(FeedMessage::Stop);
    // Let the engine thread leave its batch, so its spans close before the exporter flushes.
    // Work it still holds was released or confirmed already; do not wait on a long step.
    let joined = tokio::task::spawn_blocking(move || engine.join());
    if tokio::time::timeout(Duration::from_secs(2), joined).await.is_err() {
        tracing::warn!("the engine thread is still busy; exiting without it");
    }
    reported
}

/// Claims shards while the engine has room, until shutdown.
async fn claim_loop(
    fleet: Fleet,
    feed: std::sync::mpsc::Sender<FeedMessage>,
    out: tokio::sync::mpsc::UnboundedSender<FeedOutput>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seq: u32 = 0;
    let mut failures: u32 = 0;
    let stream = Keys::new(&fleet.config.key_prefix).queue(&fleet.config.model_id);
    while !*stop.borrow() {
        let full = fleet.feed.waiting_items.load(Ordering::SeqCst) >= fleet.config.prefetch_items
            || fleet.inflight_shards.load(Ordering::SeqCst) >= fleet.config.max_shards;
        if full {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let claimed = match fleet.queue.claim().await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => continue,
            Err(FleetError::Redis(e)) if e.code() == Some("NOGROUP") => {
                tracing::warn!(error = %e, "the queue's consumer group is gone (Redis lost its data?); creating it again");
                if let Err(e) = fleet.queue.recreate(&fleet.config.model_id, fleet.limits).await {
                    tracing::warn!(error = %e, "could not create the queue again; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
            Err(e) => {
                failures += 1;
                METRICS.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(error = %e, "cannot claim shards; retrying");
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(failures.min(5)))).await;
                continue;
            }
        };
        failures = 0;
        let (job_id, shard_id, items) =
            (claimed.shard.job_id.clone(), claimed.shard.shard_id.clone(), claimed.shard.items.len());
        let tp = claimed.traceparent.clone().unwrap_or_default();
        let claim_span = info_span!(
            "claim_shard",
            otel.kind = "consumer",
            messaging.system = "redis",
            messaging.destination.name = %stream,
            %job_id,
            %shard_id,
            items = int(items),
            reclaimed = claimed.reclaimed
        );
        parent_from_traceparent(&claim_span, &tp);
        METRICS.shards_claimed.inc();
        if claimed.reclaimed {
            METRICS.lease_reclaims.inc();
        }
        match fleet.queue.job_running(&job_id).instrument(claim_span.clone()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%job_id, "skipping a shard of an ended job");
                if let Err(e) = fleet.queue.ack(std::slice::from_ref(&claimed.entry_id)).await {
                    tracing::warn!(error = %e, "could not ack a shard of an ended job");
                }
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "could not check the job's state; running the shard anyway"),
        }
        drop(claim_span);
        let run_span = info_span!("run_shard", %job_id, %shard_id, items = int(items));
        parent_from_traceparent(&run_span, &tp);
        seq = seq.wrapping_add(1);
        if claimed.deliveries > fleet.config.max_deliveries {
            // Poison: every worker that took this shard died on it. Fail what it holds
            // (results already stored are kept) rather than take down the next worker too.
            let reason = format!(
                "the shard was delivered {} times and no worker finished it (--max-deliveries {})",
                claimed.deliveries, fleet.config.max_deliveries
            );
            tracing::warn!(%job_id, %shard_id, %reason, "failing a poison shard");
            fleet.inflight_shards.fetch_add(1, Ordering::SeqCst);
            let claimed = FeedOutput::Claimed { seq, claimed: Box::new(claimed), span: run_span };
            if out.send(claimed).is_err() {
                return;
            }
            for index in 0..items {
                let _ = out.send(FeedOutput::Failed { seq, index, reason: reason.clone() });
            }
            continue;
        }
        let shard = claimed.shard.clone();
        fleet.feed.waiting_items.fetch_add(items, Ordering::SeqCst);
        fleet.inflight_shards.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(%job_id, %shard_id, items, "claimed");
        let claimed = FeedOutput::Claimed { seq, claimed: Box::new(claimed), span: run_span.clone() };
        if out.send(claimed).is_err()
            || feed.send(FeedMessage::Shard { seq, shard: Box::new(shard), span: run_span }).is_err()
        {
            return;
        }
    }
}
