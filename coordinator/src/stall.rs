//! Why a running job is not moving, as `GetJob`, `WatchJob` and `ListJobs` say it: no live
//! worker for its model, or shards leased to a worker that stopped renewing them (killed, or
//! cut off) whose leases must expire before another worker takes them over.

use lorabeam_proto::queue::{model_fields, WORKER_GROUP};

use crate::error::Result;
use crate::server::Coordinator;

/// Pending entries looked at per status, at most.
const MAX_PENDING_READ: usize = 1000;
/// The lease assumed when no worker of the model published one (the workers' default).
const DEFAULT_LEASE_MS: u64 = 60_000;

/// A lease of the job held by a worker that no longer renews it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StaleLease {
    worker: String,
    idle_ms: u64,
}

impl Coordinator {
    /// The stall reason of a running job of `model_id` ("" when nothing holds it up that the
    /// coordinator can see).
    pub async fn stall(&self, job_id: &str, model_id: &str) -> Result<String> {
        let live = self.fleet.live(model_id).await?;
        let lease_ms: Option<u64> = redis::cmd("HGET")
            .arg(self.store.keys.model(model_id))
            .arg(model_fields::LEASE_MS)
            .query_async(&mut self.store.con.clone())
            .await?;
        let lease_ms = lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        let stale = self.stale_leases(job_id, lease_ms).await?;
        Ok(describe(model_id, &stale, lease_ms, live.len()))
    }

    /// The job's pending entries idle for more than half a lease: their holder renews every
    /// third of one, so it has stopped.
    async fn stale_leases(&self, job_id: &str, lease_ms: u64) -> Result<Vec<StaleLease>> {
        let Some(facts) = self.leases.job(job_id).await? else { return Ok(Vec::new()) };
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&facts.queue)
            .arg(WORKER_GROUP)
            .arg("IDLE")
            .arg((lease_ms / 2).max(1))
            .arg("-")
            .arg("+")
            .arg(MAX_PENDING_READ)
            .query_async(&mut self.store.con.clone())
            .await?;
        let mut stale = Vec::new();
        for (entry_id, worker, idle_ms, _deliveries) in pending {
            let Some(shard) = self.leases.shard(&facts, &entry_id).await? else { continue };
            if shard.job_id == job_id {
                stale.push(StaleLease { worker, idle_ms });
            }
        }
        Ok(stale)
    }
}

/// The sentence: the lease that expires last first (the job waits for all of them), then
/// whether any worker is live to take the shards over.
fn describe(model_id: &str, stale: &[StaleLease], lease_ms: u64, live: usize) -> String {
    let no_worker = format!("waiting for workers of model {model_id}: none is live");
    let Some(last) = stale.iter().min_by_key(|s| s.idle_ms) else {
        return if live == 0 { no_worker } else { String::new() };
    };
    let shown = lorabeam_core::quote::escape_controls(&last.worker, false);
    let shards = stale.iter().filter(|s| s.worker == last.worker).count();
    let of = if shards == 1 { "1 shard".to_string() } else { format!("{shards} shards") };
    let mut text = if last.idle_ms < lease_ms {
        let left = (lease_ms - last.idle_ms).div_ceil(1000);
        format!(
            "waiting for the lease of worker {shown} to expire (about {left} s; {of}, not renewed for {} s)",
            last.idle_ms / 1000
        )
    } else {
        format!(
            "the lease of worker {shown} expired {} s ago ({of}); waiting for a live worker to take it over",
            (last.idle_ms - lease_ms) / 1000
        )
    };
    if live == 0 {
        text.push_str(&format!("; {no_worker}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(worker: &str, idle_ms: u64) -> StaleLease {
        StaleLease { worker: worker.into(), idle_ms }
    }

    #[test]
    fn a_stall_names_the_dead_worker_and_the_time_left() {
        assert_eq!(describe("m", &[], 60_000, 1), "");
        assert_eq!(describe("m", &[], 60_000, 0), "waiting for workers of model m: none is live");
        let text = describe("m", &[lease("w1", 20_500), lease("w1", 30_000)], 60_000, 1);
        assert_eq!(text, "waiting for the lease of worker w1 to expire (about 40 s; 2 shards, not renewed for 20 s)");
        let text = describe("m", &[lease("w1", 65_000)], 60_000, 0);
        assert_eq!(
            text,
            "the lease of worker w1 expired 5 s ago (1 shard); waiting for a live worker to take it over; waiting for workers of model m: none is live"
        );
        assert!(!describe("m", &[lease("w\u{1b}[2J", 1)], 60_000, 1).contains('\u{1b}'), "controls are escaped");
    }
}
