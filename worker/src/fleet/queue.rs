//! The worker's side of the Redis shard queue: claiming shards (expired leases first), renewing
//! leases, acking confirmed shards and releasing unfinished ones.

use std::time::Duration;

use lorabeam_core::ModelLimits;
use lorabeam_proto::connect::redis_manager;
use lorabeam_proto::heartbeat::Heartbeat;
use lorabeam_proto::queue::{ensure_queue, job_fields, model_fields, stream_fields, Keys, ShardMessage, WORKER_GROUP};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::error::FleetError;

/// How long one blocking read waits for new shards before the claimer looks around again.
const BLOCK: Duration = Duration::from_millis(1000);

/// A shard this worker holds, with the stream entry that is its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub entry_id: String,
    pub shard: ShardMessage,
    pub traceparent: Option<String>,
    /// Taken over from a worker whose lease expired.
    pub reclaimed: bool,
    /// How many times the queue has handed this shard out, this time included.
    pub deliveries: u64,
}

#[derive(Clone)]
pub struct ShardQueue {
    /// For short commands.
    con: ConnectionManager,
    /// For blocking reads, which would hold up every other command on a shared connection.
    blocking: ConnectionManager,
    keys: Keys,
    queue: String,
    consumer: String,
    lease: Duration,
    /// Redis's address (never its password), for the errors that name it.
    address: String,
}

impl ShardQueue {
    pub async fn connect(
        client: redis::Client,
        keys: Keys,
        model_id: &str,
        consumer: String,
        lease: Duration,
    ) -> Result<Self, FleetError> {
        let mut con = redis_manager(&client, Duration::from_secs(10)).await?;
        let blocking = redis_manager(&client, BLOCK + Duration::from_secs(10)).await?;
        let queue = keys.queue(model_id);
        ensure_queue(&mut con, &keys, model_id).await?;
        let address = client.get_connection_info().addr().to_string();
        Ok(Self { con, blocking, keys, queue, consumer, lease, address })
    }

    /// Creates the stream and group again, and registers the model again: Redis lost its data
    /// (restarted without persistence), and claims answer `NOGROUP` until then.
    pub async fn recreate(&self, model_id: &str, limits: ModelLimits) -> Result<(), FleetError> {
        ensure_queue(&mut self.con.clone(), &self.keys, model_id).await?;
        self.register_model(model_id, limits).await
    }

    /// Publishes the served model's limits so the coordinator checks jobs against them.
    pub async fn register_model(&self, model_id: &str, limits: ModelLimits) -> Result<(), FleetError> {
        let _: () = redis::cmd("HSET")
            .arg(self.keys.model(model_id))
            .arg(model_fields::VOCAB_SIZE)
            .arg(limits.vocab_size)
            .arg(model_fields::N_POSITIONS)
            .arg(limits.n_positions)
            .arg(model_fields::LEASE_MS)
            .arg(self.lease.as_millis() as u64)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Registers (or refreshes) the secret that proves this worker's consumer name to the
    /// coordinator; it expires with the heartbeat.
    pub async fn register_consumer(&self, secret: &str, ttl: Duration) -> Result<(), FleetError> {
        let _: () = redis::cmd("SET")
            .arg(self.keys.consumer_secret(&self.consumer))
            .arg(secret)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Writes this worker's heartbeat (see `lorabeam_proto::heartbeat`).
    pub async fn heartbeat(&self, beat: &Heartbeat, ttl: Duration) -> Result<(), FleetError> {
        Ok(beat.write(&mut self.con.clone(), &self.keys, ttl).await?)
    }

    /// Removes this worker's heartbeat and consumer secret: it stops cleanly.
    pub async fn remove_heartbeat(&self, model_id: &str) -> Result<(), FleetError> {
        Heartbeat::remove(&mut self.con.clone(), &self.keys, model_id, &self.consumer).await?;
        let _: () =
            redis::cmd("DEL").arg(self.keys.consumer_secret(&self.consumer)).query_async(&mut self.con.clone()).await?;
        Ok(())
    }

    /// A connection for short commands beside the queue's own (the adapter marks).
    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Redis's address, as errors name it.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Claims one shard: one whose lease expired, else a new one (waiting up to a second).
    /// Entries that cannot be read are acked away and reported, never retried forever.
    pub async fn claim(&self) -> Result<Option<Claimed>, FleetError> {
        let reclaimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.queue)
            .arg(WORKER_GROUP)
            .arg(&self.consumer)
            .arg(self.lease.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.con.clone())
            .await?;
        if !reclaimed.deleted_ids.is_empty() {
            // Entries deleted by a cancel while pending: nothing to do but forget them.
            self.ack(&reclaimed.deleted_ids).await?;
        }
        if let Some(entry) = reclaimed.claimed.into_iter().next() {
            tracing::info!(entry = %entry.id, "reclaimed a shard whose lease expired");
            let deliveries = self.deliveries(&entry.id).await?;
            return Ok(self.parse(entry).await?.map(|c| Claimed { reclaimed: true, deliveries, ..c }));
        }
        let read: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(WORKER_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.queue)
            .arg(">")
            .query_async(&mut self.blocking.clone())
            .await?;
        match read.keys.into_iter().flat_map(|k| k.ids).next() {
            Some(entry) => self.parse(entry).await,
            None => Ok(None),
        }
    }

    /// The delivery count of a pending entry (1 when it cannot be read).
    async fn deliveries(&self, entry_id: &str) -> Result<u64, FleetError> {
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.queue)
            .arg(WORKER_GROUP)
            .arg(entry_id)
            .arg(entry_id)
            .arg(1)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(pending.first().map(|p| p.3).unwrap_or(1))
    }

    async fn parse(&self, entry: StreamId) -> Result<Option<Claimed>, FleetError> {
        let body: Option<String> = entry.get(stream_fields::SHARD);
        let parsed = body.as_deref().map(serde_json::from_str::<ShardMessage>);
        match parsed {
            Some(Ok(shard)) => {
                let traceparent = entry.get(stream_fields::TRACEPARENT);
                Ok(Some(Claimed { traceparent, entry_id: entry.id, shard, reclaimed: false, deliveries: 1 }))
            }
            Some(Err(e)) => {
                tracing::error!(entry = %entry.id, error = %e, "dropping a stream entry that is not a shard");
                self.ack(&[entry.id]).await?;
                Ok(None)
            }
            None => {
                tracing::error!(entry = %entry.id, "dropping a stream entry without a shard field");
                self.ack(&[entry.id]).await?;
                Ok(None)
            }
        }
    }

    /// Renews the leases this worker still holds; returns the entries it no longer holds.
    pub async fn renew(&self, entry_ids: &[String]) -> Result<Vec<String>, FleetError> {
        let script = &*lorabeam_proto::queue_scripts::RENEW_LEASE;
        let mut lost = Vec::new();
        for id in entry_ids {
            let held: i64 = script
                .key(&self.queue)
                .arg(WORKER_GROUP)
                .arg(&self.consumer)
                .arg(id)
                .invoke_async(&mut self.con.clone())
                .await?;
            if held == 0 {
                lost.push(id.clone());
            }
        }
        Ok(lost)
    }

    /// Acks finished shards and deletes their entries, so the stream holds only work to do.
    pub async fn ack(&self, entry_ids: &[String]) -> Result<(), FleetError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let _: () = redis::pipe()
            .cmd("XACK")
            .arg(&self.queue)
            .arg(WORKER_GROUP)
            .arg(entry_ids)
            .ignore()
            .cmd("XDEL")
            .arg(&self.queue)
            .arg(entry_ids)
            .ignore()
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Hands unfinished shards back: their leases are marked expired, so the next worker's
    /// claim takes them at once.
    pub async fn release(&self, entry_ids: &[String]) -> Result<(), FleetError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let _: () = redis::cmd("XCLAIM")
            .arg(&self.queue)
            .arg(WORKER_GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(entry_ids)
            .arg("IDLE")
            .arg(self.lease.as_millis() as u64 + 1000)
            .arg("JUSTID")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Whether a job still takes results, queued or running (a cancelled, finalizing or
    /// expired job's items are skipped).
    pub async fn job_running(&self, job_id: &str) -> Result<bool, FleetError> {
        let state: Option<String> = redis::cmd("HGET")
            .arg(self.keys.job(job_id))
            .arg(job_fields::STATE)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(lorabeam_proto::job_state::JobPhase::name_takes_results(state.as_deref()))
    }
}
