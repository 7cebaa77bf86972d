//! A worker's heartbeat in Redis: what `lorabeam workers`, the `lorabeam_workers` gauge and a
//! job's stall reason read. The key is [`Keys::worker`](crate::queue::Keys::worker), listed in
//! [`Keys::model_workers`](crate::queue::Keys::model_workers); a worker rewrites it every
//! interval with a TTL of [`TTL_INTERVALS`] intervals, so a worker killed with `kill -9` drops
//! out within that time.

use std::collections::HashMap;

use crate::queue::Keys;

/// A heartbeat outlives this many missed intervals before its key expires.
pub const TTL_INTERVALS: u32 = 3;

/// Fields of the heartbeat hash.
pub mod fields {
    pub const WORKER: &str = "worker";
    pub const MODEL_ID: &str = "model_id";
    /// Most rows of the worker's continuous batch.
    pub const MAX_ROWS: &str = "max_rows";
    /// Beam rows of the batch running at the last decode step (0 when idle).
    pub const ROWS_IN_USE: &str = "rows_in_use";
    /// Items decoded per second, smoothed over about half a minute.
    pub const ITEMS_PER_S: &str = "items_per_s";
    /// When it was written (Unix ms).
    pub const LAST_SEEN_MS: &str = "last_seen_ms";
    /// The worker's lease (ms).
    pub const LEASE_MS: &str = "lease_ms";
}

/// One heartbeat, as written and read.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub worker: String,
    pub model_id: String,
    pub max_rows: u32,
    pub rows_in_use: u32,
    pub items_per_s: f64,
    pub last_seen_ms: i64,
    pub lease_ms: u64,
}

impl Heartbeat {
    /// The hash's fields.
    pub fn fields(&self) -> [(&'static str, String); 7] {
        [
            (fields::WORKER, self.worker.clone()),
            (fields::MODEL_ID, self.model_id.clone()),
            (fields::MAX_ROWS, self.max_rows.to_string()),
            (fields::ROWS_IN_USE, self.rows_in_use.to_string()),
            (fields::ITEMS_PER_S, format!("{:.3}", self.items_per_s)),
            (fields::LAST_SEEN_MS, self.last_seen_ms.to_string()),
            (fields::LEASE_MS, self.lease_ms.to_string()),
        ]
    }

    /// A heartbeat read back; `None` when the hash is empty (expired) or not one a worker wrote.
    pub fn from_hash(hash: &HashMap<String, String>) -> Option<Self> {
        let text = |f: &str| hash.get(f).cloned();
        Some(Self {
            worker: text(fields::WORKER)?,
            model_id: text(fields::MODEL_ID)?,
            max_rows: text(fields::MAX_ROWS)?.parse().ok()?,
            // Absent from an older worker's heartbeat.
            rows_in_use: text(fields::ROWS_IN_USE).and_then(|v| v.parse().ok()).unwrap_or(0),
            items_per_s: text(fields::ITEMS_PER_S)?.parse().ok()?,
            last_seen_ms: text(fields::LAST_SEEN_MS)?.parse().ok()?,
            lease_ms: text(fields::LEASE_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    /// Writes the heartbeat, its TTL and its index entries in one transaction.
    pub async fn write(
        &self,
        con: &mut impl redis::aio::ConnectionLike,
        keys: &Keys,
        ttl: std::time::Duration,
    ) -> redis::RedisResult<()> {
        let key = keys.worker(&self.model_id, &self.worker);
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &self.fields())
            .ignore()
            .pexpire(&key, ttl.as_millis().max(1) as i64)
            .ignore()
            .zadd(keys.model_workers(&self.model_id), &self.worker, self.last_seen_ms)
            .ignore()
            .sadd(keys.registered_models(), &self.model_id)
            .ignore()
            .zadd(keys.models_last_served(), &self.model_id, self.last_seen_ms)
            .ignore()
            .query_async(con)
            .await
    }

    /// Removes the heartbeat of a worker that stops cleanly, so it is not listed meanwhile.
    pub async fn remove(
        con: &mut impl redis::aio::ConnectionLike,
        keys: &Keys,
        model_id: &str,
        worker: &str,
    ) -> redis::RedisResult<()> {
        redis::pipe()
            .del(keys.worker(model_id, worker))
            .ignore()
            .zrem(keys.model_workers(model_id), worker)
            .ignore()
            .query_async(con)
            .await
    }
}

/// The live heartbeats of a model's workers, sorted by worker; index members whose key
/// expired are pruned.
pub async fn live_workers(
    con: &mut (impl redis::aio::ConnectionLike + Send),
    keys: &Keys,
    model_id: &str,
) -> redis::RedisResult<Vec<Heartbeat>> {
    let index = keys.model_workers(model_id);
    let members: Vec<String> = redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1).query_async(con).await?;
    let mut live = Vec::new();
    for worker in members {
        let hash: HashMap<String, String> =
            redis::cmd("HGETALL").arg(keys.worker(model_id, &worker)).query_async(con).await?;
        match Heartbeat::from_hash(&hash) {
            Some(beat) => live.push(beat),
            None => {
                let _: () = redis::cmd("ZREM").arg(&index).arg(&worker).query_async(con).await?;
            }
        }
    }
    live.sort_by(|a, b| a.worker.cmp(&b.worker));
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_round_trips_through_its_hash() {
        let beat = Heartbeat {
            worker: "w-1".into(),
            model_id: "e2e".into(),
            max_rows: 256,
            rows_in_use: 40,
            items_per_s: 12.5,
            last_seen_ms: 1_700_000_000_000,
            lease_ms: 60_000,
        };
        let hash: HashMap<String, String> = beat.fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(Heartbeat::from_hash(&hash), Some(beat));
        assert_eq!(Heartbeat::from_hash(&HashMap::new()), None, "an expired key is no heartbeat");
        let mut bad = hash.clone();
        bad.insert(fields::MAX_ROWS.into(), "many".into());
        assert_eq!(Heartbeat::from_hash(&bad), None);
        assert_eq!(Keys::new("lb").worker("e2e", "w-1"), "lb:worker:e2e:w-1");
        assert_eq!(Keys::new("lb").model_workers("e2e"), "lb:model:e2e:workers");
    }
}
