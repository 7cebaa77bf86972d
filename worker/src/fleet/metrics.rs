//! The worker's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub shards_claimed: IntCounter,
    pub lease_reclaims: IntCounter,
    pub shards_done: IntCounter,
    pub records_done: IntCounter,
    pub records_failed: IntCounter,
    pub generated_tokens: IntCounter,
    pub decode_step_seconds: Histogram,
    pub items_waiting: IntGauge,
    pub batch_rows: IntGauge,
    pub shards_in_flight: IntGauge,
    pub errors: IntCounterVec,
    /// Adapters loaded and prepared (a cache miss each): what a sweep that thrashes shows.
    pub adapter_loads: IntCounter,
    pub adapter_evictions: IntCounter,
    pub adapter_bytes: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

/// Metric names and help texts are constants, so building them cannot fail at run time.
/// Every `kind` of `lorabeam_worker_errors_total`: the series start at 0, so dashboards and
/// alerts see them (and their HELP and TYPE) before the first error.
pub const ERROR_KINDS: [&str; 3] = ["redis", "coordinator_link", "engine"];

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let errors = IntCounterVec::new(Opts::new("lorabeam_worker_errors_total", "Errors, by kind"), &["kind"])
        .expect("valid metric");
    for kind in ERROR_KINDS {
        errors.with_label_values(&[kind]);
    }
    let buckets = prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets");
    let step = HistogramOpts::new("lorabeam_worker_decode_step_seconds", "One batched decode step").buckets(buckets);
    Metrics {
        shards_claimed: counter(&r, "lorabeam_worker_shards_claimed_total", "Shards claimed from the queue"),
        lease_reclaims: counter(&r, "lorabeam_worker_lease_reclaims_total", "Shards taken over after a lease expired"),
        shards_done: counter(&r, "lorabeam_worker_shards_done_total", "Shards confirmed by the coordinator and acked"),
        records_done: counter(&r, "lorabeam_worker_items_done_total", "Items decoded"),
        records_failed: counter(&r, "lorabeam_worker_items_failed_total", "Items that failed"),
        generated_tokens: counter(&r, "lorabeam_worker_generated_tokens_total", "Tokens generated (every beam row)"),
        decode_step_seconds: register(&r, Histogram::with_opts(step).expect("valid metric")),
        items_waiting: gauge(&r, "lorabeam_worker_items_waiting", "Items claimed, not yet in the batch"),
        batch_rows: gauge(&r, "lorabeam_worker_batch_rows", "Beam rows of the running batch at its last decode step"),
        shards_in_flight: gauge(&r, "lorabeam_worker_shards_in_flight", "Shards held: claimed, not yet confirmed"),
        errors: register(&r, errors),
        adapter_loads: counter(&r, "lorabeam_worker_adapter_loads_total", "Adapters loaded and prepared for the base"),
        adapter_evictions: counter(&r, "lorabeam_worker_adapter_evictions_total", "Adapters evicted from the cache"),
        adapter_bytes: gauge(&r, "lorabeam_worker_adapter_bytes", "Bytes of the prepared adapters held"),
        registry: r,
    }
});
