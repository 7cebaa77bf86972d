//! The fleet worker: claims shards of its model from Redis, keeps the engine's continuous
//! batch full across shards, streams results to the coordinator, and acks a shard only once
//! the coordinator confirms it holds every result.
//!
//! Four parts run at once: the [`claimer`] (an async task) takes shards while the engine has
//! room; the [`reporter`] (an async task that owns the coordinator stream) owns every claimed
//! shard until it is confirmed, hands it to the engine thread, and is the one place that
//! decides a shard is no longer run (its job ended, or its lease went elsewhere); the engine
//! thread ([`feed`]) owns the pure [`scheduler`] and the model; the adapter loader thread
//! ([`adapters`]) reads adapters from disk so that the engine never waits for one.
//!
//! Modules depend on each other without cycles: mod.rs uses its children, and no child uses
//! an item defined here (`scripts/check-modules.py worker/src/fleet` checks it).

pub mod adapter_book;
pub mod adapter_cache;
mod adapters;
mod batch_trace;
mod claimer;
mod config;
mod decode;
mod error;
mod feed;
mod heartbeat;
mod ledger;
mod messages;
pub mod metrics;
mod queue;
mod remote_adapters;
mod reporter;
mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lorabeam_proto::adapter_marks::Incarnation;
use lorabeam_proto::queue::Keys;

pub use adapters::{AdapterConfig, AdapterSource};
use claimer::claim_loop;
use config::Fleet;
pub use config::FleetConfig;
pub use error::FleetError;
use feed::run_feed;
use messages::FeedMessage;
pub use messages::{Decoder, ModelBudget};
use queue::ShardQueue;
pub use remote_adapters::RemoteAdapters;
use reporter::Reporter;

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
    // Registered before the first Report stream opens: the coordinator checks it there.
    let secret: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    queue.register_consumer(&secret, config.heartbeat * lorabeam_proto::heartbeat::TTL_INTERVALS).await?;
    let beat_config = heartbeat::HeartbeatConfig {
        worker: config.consumer.clone(),
        model_id: config.model_id.clone(),
        max_rows: u32::try_from(decoder.max_rows()).unwrap_or(u32::MAX),
        every: config.heartbeat,
        secret: secret.clone(),
    };
    let (beat_stop, beat_stopped) = tokio::sync::watch::channel(false);
    let beating = tokio::spawn(heartbeat::beat(queue.clone(), beat_config, beat_stopped));
    let fleet = Fleet {
        config: Arc::new(config),
        queue,
        feed: Arc::default(),
        inflight_shards: Arc::default(),
        limits: decoder.limits(),
        secret,
    };
    let book = adapter_book::RedisBook::new(
        fleet.queue.connection(),
        fleet.queue.keys(),
        &fleet.config.model_id,
        Incarnation { worker: fleet.config.consumer.clone(), id: uuid::Uuid::new_v4().simple().to_string() },
        fleet.config.heartbeat,
        tokio::runtime::Handle::current(),
    );
    let (feed_tx, feed_rx) = std::sync::mpsc::channel();
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = {
        let (out_tx, shared, replies) = (out_tx.clone(), fleet.feed.clone(), feed_tx.clone());
        let adapters = fleet.config.adapters.clone();
        std::thread::Builder::new()
            .name("lorabeam-engine".into())
            .spawn(move || run_feed(decoder, adapters, Box::new(book), feed_rx, replies, out_tx, shared))
            .map_err(FleetError::EngineThread)?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let claimer = tokio::spawn(claim_loop(fleet.clone(), out_tx, stop_rx.clone()));
    tracing::info!(model_id = %fleet.config.model_id, consumer = %fleet.config.consumer, "worker ready");
    let reported = Reporter::new(fleet, feed_tx.clone()).run(out_rx, stop_rx).await;
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
