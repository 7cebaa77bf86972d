//! How a worker joins the fleet, and the handles its claimer and reporter share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::adapters::AdapterConfig;
use super::messages::FeedShared;
use super::queue::ShardQueue;

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
pub(super) struct Fleet {
    pub config: Arc<FleetConfig>,
    pub queue: ShardQueue,
    pub feed: Arc<FeedShared>,
    /// Shards claimed and not yet confirmed or released (counted up by the claimer, down by
    /// the reporter, which wakes the claimer through `feed.room`).
    pub inflight_shards: Arc<AtomicUsize>,
    /// What the worker registered for its model, registered again if Redis loses it.
    pub limits: lorabeam_core::ModelLimits,
    /// The secret registered for this worker's consumer name, sent on its Report streams.
    pub secret: Arc<str>,
}

impl Fleet {
    /// A shard left this worker (confirmed, dropped or lost): the claimer may take another.
    pub fn shards_done(&self, count: usize) {
        if count > 0 {
            self.inflight_shards.fetch_sub(count, Ordering::SeqCst);
            self.feed.room.notify_one();
        }
    }
}
