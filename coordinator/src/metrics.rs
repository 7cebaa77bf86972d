//! The coordinator's Prometheus metrics. Counters move as things happen; gauges that describe
//! Redis (queue depth, lag, jobs by state, work in flight) are read from it at each scrape.

use std::sync::LazyLock;

use lorabeam_proto::queue::{job_fields as f, WORKER_GROUP};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use lorabeam_core::{DataError, LineFault};
use tonic::Status;

use crate::error::{CoordinatorError, Result};
use crate::store::JobStore;

pub struct Metrics {
    pub registry: Registry,
    pub jobs_submitted: IntCounter,
    pub records_done: IntCounter,
    pub shards_done: IntCounter,
    pub generated_tokens: IntCounter,
    /// Finalizations this coordinator ran to their end, and scorings it started.
    pub jobs_finalized: IntCounter,
    pub scoring_runs: IntCounter,
    pub output_uploads_failed: IntCounter,
    /// How long each scoring took (references read, metrics computed).
    pub scoring_seconds: Histogram,
    /// Finalizations stopped because the job left this coordinator's hands (a cancel).
    pub finalizations_lost: IntCounter,
    pub maintenance_passes: IntCounter,
    /// 1 while Redis answered this coordinator's last PING (the maintenance loop's, every 5 s),
    /// 0 while it does not: the one series that says Redis is away, since the gauges read
    /// from Redis then keep their last values.
    pub redis_up: IntGauge,
    /// The longest an open job has gone without a new result (see `progress_watch`).
    pub job_seconds_without_progress: IntGauge,
    pub errors: IntCounterVec,
    pub limit_rejections: IntCounterVec,
    /// Bytes held by SubmitJob streams still being read, and how many are open.
    pub submission_bytes_in_flight: IntGauge,
    pub submissions_open: IntGauge,
    /// Workers whose heartbeat is live, by model (see `fleet`).
    pub workers: IntGaugeVec,
    queue_depth: IntGaugeVec,
    queue_pending: IntGaugeVec,
    queue_lag: IntGaugeVec,
    jobs: IntGaugeVec,
    in_flight: IntGaugeVec,
}

/// Every `kind` of `lorabeam_errors_total` ([`CoordinatorError::kind`]) and every `limit` of
/// `lorabeam_limit_rejections_total`: their series start at 0, so dashboards and alerts see
/// them (and their HELP and TYPE) before the first error.
pub const ERROR_KINDS: [&str; 23] = [
    "redis",
    "corrupt_state",
    "invalid_spec",
    "invalid_params",
    "invalid_data",
    "limit",
    "job_not_found",
    "unknown_model",
    "invalid_job_id",
    "job_not_running",
    "job_ended_short",
    "bad_page_token",
    "bad_worker_report",
    "not_lease_holder",
    "unproven_consumer",
    "submission_idle",
    "truncated_submission",
    "idempotency_conflict",
    "stream",
    "write",
    "storage",
    "internal",
    "shutting_down",
];
pub const LIMITS: [&str; 12] = [
    "running_jobs_per_client",
    "submission_bytes_in_flight",
    "submissions_per_client",
    "job_bytes",
    "message_bytes",
    "line_bytes",
    "context_tokens",
    "eval_len",
    "beam",
    "items",
    "reference_bytes",
    "data_url_bytes",
];

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauges(registry: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// Metric names and help texts are constants, so building them cannot fail at run time.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let errors =
        IntCounterVec::new(Opts::new("lorabeam_errors_total", "Errors returned to callers, by kind"), &["kind"])
            .expect("valid metric");
    registry.register(Box::new(errors.clone())).expect("unique metric");
    let limit_rejections =
        IntCounterVec::new(Opts::new("lorabeam_limit_rejections_total", "Requests refused by a limit"), &["limit"])
            .expect("valid metric");
    registry.register(Box::new(limit_rejections.clone())).expect("unique metric");
    for kind in ERROR_KINDS {
        errors.with_label_values(&[kind]);
    }
    for limit in LIMITS {
        limit_rejections.with_label_values(&[limit]);
    }
    Metrics {
        jobs_submitted: counter(&registry, "lorabeam_jobs_submitted_total", "Jobs accepted"),
        records_done: counter(&registry, "lorabeam_records_done_total", "Records whose outcome was stored"),
        shards_done: counter(&registry, "lorabeam_shards_done_total", "Shards confirmed to workers"),
        generated_tokens: counter(&registry, "lorabeam_generated_tokens_total", "Tokens generated by workers"),
        jobs_finalized: counter(&registry, "lorabeam_jobs_finalized_total", "Jobs this coordinator finalized"),
        scoring_runs: counter(&registry, "lorabeam_scoring_runs_total", "Scorings of jobs this coordinator started"),
        output_uploads_failed: counter(
            &registry,
            "lorabeam_output_uploads_failed_total",
            "Finished jobs whose output could not be uploaded to the --output-dir store (kept in the spool)",
        ),
        finalizations_lost: counter(
            &registry,
            "lorabeam_finalizations_lost_total",
            "Finalizations stopped: the job was cancelled or taken over meanwhile",
        ),
        maintenance_passes: counter(&registry, "lorabeam_maintenance_passes_total", "Maintenance passes run"),
        redis_up: gauge(&registry, "lorabeam_redis_up", "1 while Redis answers this coordinator's PING, 0 while not"),
        job_seconds_without_progress: gauge(
            &registry,
            "lorabeam_job_max_seconds_without_progress",
            "The longest any queued or running job has gone without a new result, as this coordinator saw it (0 without such jobs)",
        ),
        scoring_seconds: {
            let buckets = prometheus::exponential_buckets(0.05, 2.0, 14).expect("valid buckets");
            let opts = HistogramOpts::new("lorabeam_scoring_seconds", "One job's scoring").buckets(buckets);
            let h = Histogram::with_opts(opts).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        },
        errors,
        limit_rejections,
        submission_bytes_in_flight: gauge(
            &registry,
            "lorabeam_submission_bytes_in_flight",
            "Bytes of JSONL held by SubmitJob streams not yet finished",
        ),
        submissions_open: gauge(&registry, "lorabeam_submissions_open", "SubmitJob streams being read"),
        workers: gauges(&registry, "lorabeam_workers", "Workers with a live heartbeat, by model", "model_id"),
        queue_depth: gauges(&registry, "lorabeam_queue_depth", "Shards in the model's stream", "model_id"),
        queue_pending: gauges(&registry, "lorabeam_queue_pending", "Shards leased to workers", "model_id"),
        queue_lag: gauges(&registry, "lorabeam_queue_lag", "Shards not yet delivered to any worker", "model_id"),
        jobs: gauges(&registry, "lorabeam_jobs", "Jobs kept, by state", "state"),
        in_flight: gauges(&registry, "lorabeam_in_flight", "Records and shards of running jobs not yet done", "unit"),
        registry,
    }
});

/// Where an error leaves the service for a caller: counted by kind (and by limit, for the
/// limits it broke), then mapped onto its gRPC status. Every handler ends through here.
pub fn rpc_error(err: CoordinatorError) -> Status {
    count_error(&err);
    Status::from(err)
}

fn count_error(err: &CoordinatorError) {
    let m = &*METRICS;
    m.errors.with_label_values(&[err.kind()]).inc();
    match err {
        CoordinatorError::LimitExceeded { limit, .. } => m.limit_rejections.with_label_values(&[limit]).inc(),
        CoordinatorError::SubmissionIdle(_) => m.limit_rejections.with_label_values(&["submission_idle"]).inc(),
        CoordinatorError::InvalidData(DataError::BadLines { errors, .. }) => {
            for e in errors {
                let limit = match e.fault {
                    LineFault::LineTooLong { .. } => "line_bytes",
                    LineFault::ContextTooLong { .. } => "context_tokens",
                    _ => continue,
                };
                m.limit_rejections.with_label_values(&[limit]).inc();
            }
        }
        _ => {}
    }
}

/// Reads the gauges' values from Redis.
pub async fn refresh(store: &JobStore) -> Result<()> {
    let m = &*METRICS;
    let mut con = store.con.clone();
    let models: Vec<String> = redis::cmd("SMEMBERS").arg(store.keys.models()).query_async(&mut con).await?;
    for model_id in models {
        let queue = store.keys.queue(&model_id);
        let exists: bool = redis::cmd("EXISTS").arg(&queue).query_async(&mut con).await?;
        if !exists {
            continue;
        }
        let depth: i64 = redis::cmd("XLEN").arg(&queue).query_async(&mut con).await?;
        m.queue_depth.with_label_values(&[model_id.as_str()]).set(depth);
        let groups: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("GROUPS").arg(&queue).query_async(&mut con).await?;
        for group in groups.iter().filter(|g| matches!(g.get("name"), Some(v) if value_str(v) == WORKER_GROUP)) {
            let number = |key: &str| group.get(key).and_then(value_int).unwrap_or(0);
            m.queue_pending.with_label_values(&[model_id.as_str()]).set(number("pending"));
            m.queue_lag.with_label_values(&[model_id.as_str()]).set(number("lag"));
        }
    }
    // Counts kept by the state scripts, and the open jobs alone: a scrape costs the same with
    // ten or ten thousand finished jobs kept.
    m.jobs.reset();
    for (state, count) in store.state_counts().await? {
        if count > 0 {
            m.jobs.with_label_values(&[state.as_str()]).set(count);
        }
    }
    let (mut records, mut shards) = (0i64, 0i64);
    for (job_id, phase) in store.open_jobs().await? {
        if !phase.takes_results() {
            continue;
        }
        let (total, done, all): (Option<i64>, Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(store.keys.job(&job_id))
            .arg(f::RECORDS)
            .arg(f::RECORDS_DONE)
            .arg(f::SHARDS)
            .query_async(&mut con)
            .await?;
        records += total.unwrap_or(0) - done.unwrap_or(0);
        let shards_done: i64 = redis::cmd("SCARD").arg(store.keys.shards_done(&job_id)).query_async(&mut con).await?;
        shards += all.unwrap_or(0) - shards_done;
    }
    m.in_flight.with_label_values(&["records"]).set(records);
    m.in_flight.with_label_values(&["shards"]).set(shards);
    Ok(())
}

fn value_str(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    }
}

fn value_int(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_and_limit_has_a_series_from_the_start() {
        let redis = redis::RedisError::from((redis::ErrorKind::Io, "refused"));
        let limit = || CoordinatorError::LimitExceeded { limit: "beam", detail: String::new() };
        let errors = [
            CoordinatorError::Redis(redis),
            CoordinatorError::CorruptState { job_id: "j".into(), what: "w".into() },
            CoordinatorError::InvalidSpec("s".into()),
            CoordinatorError::InvalidParams(lorabeam_core::ParamError::BeamZero(0)),
            CoordinatorError::InvalidData(DataError::NoRecords { path: "p".into() }),
            limit(),
            CoordinatorError::JobNotFound("j".into()),
            CoordinatorError::UnknownModel { model_id: "m".into(), known: "a".into() },
            CoordinatorError::InvalidJobId("j".into()),
            CoordinatorError::JobNotRunning { job_id: "j".into(), state: "s".into(), action: "a" },
            CoordinatorError::JobEndedShort { job_id: "j".into(), state: "s".into(), missing: 1, records: 2 },
            CoordinatorError::BadPageToken("t".into()),
            CoordinatorError::BadWorkerReport("r".into()),
            CoordinatorError::NotLeaseHolder("l".into()),
            CoordinatorError::UnprovenConsumer("c".into()),
            CoordinatorError::SubmissionIdle("i".into()),
            CoordinatorError::TruncatedSubmission("t".into()),
            CoordinatorError::IdempotencyConflict { key: "k".into(), job_id: "j".into(), differing: "d".into() },
            CoordinatorError::Stream(Status::internal("x")),
            CoordinatorError::Write(lorabeam_core::WriteError { path: "p".into(), source: std::io::Error::other("x") }),
            CoordinatorError::Storage(lorabeam_storage::StorageError::NotFound { url: "s3://b/k".into() }),
            CoordinatorError::Internal("i".into()),
            CoordinatorError::ShuttingDown,
        ];
        let kinds: Vec<&str> = errors.iter().map(CoordinatorError::kind).collect();
        assert_eq!(kinds, ERROR_KINDS, "ERROR_KINDS lists CoordinatorError::kind, in order");
        let text = prometheus::TextEncoder::new().encode_to_string(&METRICS.registry.gather()).expect("encode");
        for kind in ERROR_KINDS {
            assert!(text.contains(&format!("lorabeam_errors_total{{kind=\"{kind}\"}} ")), "{kind}:\n{text}");
        }
        for limit in LIMITS {
            assert!(text.contains(&format!("lorabeam_limit_rejections_total{{limit=\"{limit}\"}} ")), "{limit}");
        }
        assert!(text.contains("# TYPE lorabeam_limit_rejections_total counter"));
    }
}
