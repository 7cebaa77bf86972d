//! Adapter loads of one worker whose cache holds 2 of 4 adapters, with and without the
//! held-adapter preference (`--prefer-held-adapters`), on two queues of the same work:
//! - `sweep`: `lorabeam sweep`'s order, one job per adapter queued one after the other
//!   (A A A A B B B B ...);
//! - `interleaved`: the 4 adapters over 4 slices of the data, submitted slice by slice, so the
//!   queue cycles A B C D A B C D ... (two sweeps at once, or a sweep per data slice).
//!
//! - `sequential`: the 4 adapters one job at a time, each submitted when the last has ended
//!   (4 single-adapter runs on a warm worker).
//!
//! The queued orders are queued before the worker starts, so each run sees the same queue.
//! Prints the loads the worker counted (`lorabeam_worker_adapter_loads_total`), the seconds from
//! the worker's start to the last job's end, lines/s, and the worker's peak RSS. The worker's
//! claim window (`--prefetch-items`) is how far its preference sees.
//!
//! cargo bench --bench adapter_loads   (LORABEAM_BENCH_PREFETCH changes the window, default 200)

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::adapters::adapter_dir;
use support::cluster::{adapter_worker, http_get, wait_until, worker_metrics_port, Coordinator, Redis};
use support::{conformance_dir, decode_flags, head, lorabeam, strings};

const ADAPTERS: [&str; 4] = ["fixture", "flipped", "half", "double"];
const LINES: usize = 40;
const SLICES: usize = 4;
/// One low-rank adapter of the tiny fixture in f64 (the default `--adapter-math`): c_attn's
/// fused factors (64 × 8 and 8 × 192) in 2 layers, 0.03125 MiB; the cache holds 2 of them.
const CACHE_MIB: &str = "0.075";

fn submit(coordinator: &Coordinator, data: &Path, adapter: &str) -> String {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny-base", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(&["--shard-size", "10", "--adapter", adapter]));
    let out = lorabeam(&args);
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What one run measured.
struct Measured {
    loads: f64,
    seconds: f64,
    peak_rss_mib: f64,
}

/// Queues the work in `order`'s order, then runs one worker over it (`sequential`: submits
/// each job once the last has ended).
fn run(order: &str, prefer: bool, prefetch: &str) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let adapters = adapter_dir(d, &["flipped=-1.0", "half=0.5", "double=2.0"]);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), LINES, d, "data.jsonl");
    let redis = Redis::start(d);
    let coordinator =
        Coordinator::start(&redis, d, None, &["--max-jobs-per-client", "64", "--serve-model-ids", "tiny-base"]);
    let mut jobs = Vec::new();
    let done = |redis: &Redis, job: &str| redis.cli(&["HGET", &format!("lorabeam:job:{job}"), "state"]) == "completed";
    if order == "sweep" {
        for adapter in ADAPTERS {
            jobs.push(submit(&coordinator, &data, adapter));
        }
    } else if order == "interleaved" {
        let text = std::fs::read_to_string(&data).expect("data");
        let lines: Vec<&str> = text.lines().collect();
        for (k, slice) in lines.chunks(LINES / SLICES).enumerate() {
            let path = d.join(format!("slice{k}.jsonl"));
            std::fs::write(&path, slice.join("\n") + "\n").expect("write slice");
            for adapter in ADAPTERS {
                jobs.push(submit(&coordinator, &path, adapter));
            }
        }
    }
    let started = Instant::now();
    let prefer = if prefer { "true" } else { "false" };
    let flags = ["--max-adapter-mib", CACHE_MIB, "--prefer-held-adapters", prefer, "--prefetch-items", prefetch];
    let worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &flags);
    if order == "sequential" {
        for adapter in ADAPTERS {
            let job = submit(&coordinator, &data, adapter);
            wait_until("the job to end", Duration::from_secs(600), || done(&redis, &job));
            jobs.push(job);
        }
    }
    wait_until("every job to end", Duration::from_secs(600), || jobs.iter().all(|job| done(&redis, job)));
    let seconds = started.elapsed().as_secs_f64();
    let metrics = http_get(worker_metrics_port(d, "w"), "/metrics");
    let loads = support::submissions::counter(&metrics, "lorabeam_worker_adapter_loads_total");
    Measured { loads, seconds, peak_rss_mib: support::peak_rss_mib(worker.pid()) }
}

fn main() {
    let prefetch = std::env::var("LORABEAM_BENCH_PREFETCH").unwrap_or_else(|_| "200".into());
    println!("4 adapters, a cache of 2, one worker (--prefetch-items {prefetch}), greedy, {LINES} lines each");
    println!("| queue | --prefer-held-adapters | adapter loads | seconds | lines/s | worker peak RSS |");
    println!("|---|---|---|---|---|---|");
    let runs = [("sweep", false), ("sweep", true), ("interleaved", false), ("interleaved", true), ("sequential", true)];
    for (order, prefer) in runs {
        let m = run(order, prefer, &prefetch);
        let lines_per_s = (ADAPTERS.len() * LINES) as f64 / m.seconds;
        println!(
            "| {order} | {prefer} | {} | {:.1} | {lines_per_s:.1} | {:.0} MiB |",
            m.loads, m.seconds, m.peak_rss_mib
        );
    }
}
