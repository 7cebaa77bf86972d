//! The worker's heartbeat: every interval it writes who it is, what it serves, its batch rows
//! and its recent items/s to Redis (`lorabeam_proto::heartbeat`), where `lorabeam workers`, the
//! coordinator's `lorabeam_workers` gauge and a job's stall reason read it.

use std::time::{Duration, Instant};

use lorabeam_proto::heartbeat::{Heartbeat, TTL_INTERVALS};

use super::metrics::METRICS;
use super::queue::ShardQueue;

/// The least a heartbeat waits for Redis before it says Redis is unreachable.
const MIN_WAIT: Duration = Duration::from_secs(2);

/// What a heartbeat says that does not change.
pub struct HeartbeatConfig {
    pub worker: String,
    pub model_id: String,
    pub max_rows: u32,
    pub every: Duration,
    /// What proves the worker's consumer name to the coordinator (refreshed with each beat).
    pub secret: std::sync::Arc<str>,
}

/// Beats until `stop` turns true, then removes the heartbeat (a clean stop is not a death).
/// A failed write is logged at error, naming Redis's address, on every try.
pub async fn beat(queue: ShardQueue, config: HeartbeatConfig, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ttl = config.every * TTL_INTERVALS;
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_items, mut last_at) = (METRICS.records_done.get(), Instant::now());
    let mut rate: Option<f64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let items = METRICS.records_done.get();
        let elapsed = last_at.elapsed().as_secs_f64().max(1e-3);
        let recent = items.saturating_sub(last_items) as f64 / elapsed;
        let smoothed = smoothed_rate(rate, recent, elapsed);
        rate = Some(smoothed);
        let beat = Heartbeat {
            worker: config.worker.clone(),
            model_id: config.model_id.clone(),
            max_rows: config.max_rows,
            rows_in_use: u32::try_from(METRICS.batch_rows.get().max(0)).unwrap_or(u32::MAX),
            items_per_s: smoothed,
            last_seen_ms: now_ms(),
            lease_ms: queue.lease().as_millis() as u64,
        };
        (last_items, last_at) = (items, Instant::now());
        // A reconnecting connection holds commands until Redis is back: bounded here, so an
        // outage is said on every beat.
        let write = async {
            queue.heartbeat(&beat, ttl).await?;
            queue.register_consumer(&config.secret, ttl).await
        };
        let error = match tokio::time::timeout(config.every.max(MIN_WAIT), write).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", config.every.max(MIN_WAIT).as_secs()),
        };
        METRICS.errors.with_label_values(&["redis"]).inc();
        let address = queue.address();
        tracing::error!(redis = %address, %error, "cannot reach redis at {address}: heartbeat not written; retrying");
    }
    if let Err(e) = queue.remove_heartbeat(&config.model_id).await {
        tracing::warn!(error = %e, "could not remove the heartbeat; it expires by itself");
    }
}

/// Seconds a rate is smoothed over: items finish in bursts (a shard's items end together), so
/// one interval's count jumps between 0 and many.
const RATE_SMOOTHING_SECS: f64 = 30.0;

/// An exponential moving average of items/s: `recent` over the last `elapsed` seconds weighed
/// against `previous` by how much of [`RATE_SMOOTHING_SECS`] it covers.
fn smoothed_rate(previous: Option<f64>, recent: f64, elapsed: f64) -> f64 {
    match previous {
        None => recent,
        Some(previous) => {
            let weight = 1.0 - (-elapsed / RATE_SMOOTHING_SECS).exp();
            previous + weight * (recent - previous)
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_smoothed_over_bursts() {
        assert_eq!(smoothed_rate(None, 6.0, 5.0), 6.0);
        // A burst of 6/s then an idle interval: the rate falls gently, not to 0.
        let after_idle = smoothed_rate(Some(6.0), 0.0, 5.0);
        assert!((4.5..5.5).contains(&after_idle), "{after_idle}");
        // Held for long, it reaches the steady rate.
        let mut rate = Some(0.0);
        for _ in 0..100 {
            rate = Some(smoothed_rate(rate, 3.0, 5.0));
        }
        assert!((rate.unwrap_or_default() - 3.0).abs() < 1e-3);
    }
}
