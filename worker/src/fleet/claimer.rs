//! The claimer: takes shards of the worker's model from Redis while the engine has room, and
//! hands each to the reporter, which owns it from then on (and checks that its job still runs).

use std::sync::atomic::Ordering;
use std::time::Duration;

use lorabeam_proto::queue::Keys;
use lorabeam_proto::telemetry::{int, parent_from_traceparent};
use tokio::sync::mpsc::UnboundedSender;
use tracing::info_span;

use super::adapters::AdapterSource;
use super::config::Fleet;
use super::error::FleetError;
use super::messages::FeedOutput;
use super::metrics::METRICS;
use super::queue::Claimed;

/// Claims shards while the engine has room, until shutdown.
pub(super) async fn claim_loop(
    fleet: Fleet,
    out: UnboundedSender<FeedOutput>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seq: u32 = 0;
    let mut failures: u32 = 0;
    let stream = Keys::new(&fleet.config.key_prefix).queue(&fleet.config.model_id);
    while !*stop.borrow() {
        if full(&fleet) {
            // Woken when items enter the batch or a shard leaves the worker: no polling.
            let room = fleet.feed.room.notified();
            if full(&fleet) {
                tokio::select! {
                    _ = room => {}
                    _ = stop.changed() => {}
                }
            }
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
            if !fail_shard(&fleet, &out, seq, claimed, run_span, &reason) {
                return;
            }
            continue;
        }
        let mut claimed = claimed;
        if let (AdapterSource::Remote(remote), false) =
            (&fleet.config.adapters.source, claimed.shard.adapter.is_empty())
        {
            // The job's version of its adapter, fetched from the store before the shard is fed.
            match remote.prepare(&fleet.queue, &job_id, &claimed.shard.adapter).await {
                Ok(key) => claimed.shard.adapter = key,
                Err(reason) => {
                    tracing::warn!(%job_id, %shard_id, %reason, "failing a shard whose adapter cannot be had");
                    if !fail_shard(&fleet, &out, seq, claimed, run_span, &reason) {
                        return;
                    }
                    continue;
                }
            }
        }
        fleet.feed.waiting_items.fetch_add(items, Ordering::SeqCst);
        fleet.inflight_shards.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(%job_id, %shard_id, items, "claimed");
        let claimed = FeedOutput::Claimed { seq, claimed: Box::new(claimed), span: run_span, decode: true };
        if out.send(claimed).is_err() {
            return;
        }
    }
}

/// Hands a claimed shard to the reporter with every item failed for `reason` (results already
/// stored for it are kept); `false` when the reporter is gone.
fn fail_shard(
    fleet: &Fleet,
    out: &UnboundedSender<FeedOutput>,
    seq: u32,
    claimed: Claimed,
    span: tracing::Span,
    reason: &str,
) -> bool {
    let items = claimed.shard.items.len();
    fleet.inflight_shards.fetch_add(1, Ordering::SeqCst);
    let claimed = FeedOutput::Claimed { seq, claimed: Box::new(claimed), span, decode: false };
    if out.send(claimed).is_err() {
        return false;
    }
    for index in 0..items {
        let _ = out.send(FeedOutput::Failed { seq, index, reason: reason.to_string() });
    }
    true
}

/// Whether the worker holds enough: items waiting for the batch, or shards in flight.
fn full(fleet: &Fleet) -> bool {
    fleet.feed.waiting_items.load(Ordering::SeqCst) >= fleet.config.prefetch_items
        || fleet.inflight_shards.load(Ordering::SeqCst) >= fleet.config.max_shards
}
