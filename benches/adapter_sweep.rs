//! A sweep of 4 adapters over the public E2E slice (126 lines, README configuration, f64) with
//! one worker on one base, against the same 4 adapters as 4 single-adapter runs one after
//! another, each on a fresh worker (what serving one checkpoint per deployment costs). Both
//! are timed from the first worker's start to the last job's end, so both pay their model
//! loads. Prints lines/s, items/s (distinct contexts decoded), and each worker's peak RSS:
//! with 4 adapters loaded (the sweep) and with 1 (the single runs).
//!
//! cargo bench --bench adapter_sweep   (LORABEAM_BENCH_LINES takes fewer lines)

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::adapters::adapter_dir;
use support::cluster::{adapter_worker, Coordinator, Redis};
use support::{conformance_dir, decode_flags, head, lorabeam, strings};

const ADAPTERS: [&str; 4] = ["fixture", "flipped", "half", "double"];

/// What one way of running the 4 adapters measured.
struct Measured {
    seconds: f64,
    /// Peak RSS of each worker it ran, in MiB.
    peak_rss_mib: Vec<f64>,
}

/// `lorabeam sweep` of all 4 adapters; it returns once every job has ended and its file is written.
fn sweep(coordinator: &Coordinator, data: &Path, out: &Path) {
    let mut args = strings(&["sweep", "--coordinator", &coordinator.url(), "--model-id", "tiny-base", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    for adapter in ADAPTERS {
        args.extend(strings(&["--adapter", adapter]));
    }
    args.extend(decode_flags("readme-f64"));
    args.extend(["--output-dir".to_string(), out.to_str().expect("utf-8").into()]);
    let done = lorabeam(&args);
    assert!(done.status.success(), "sweep failed: {}", String::from_utf8_lossy(&done.stderr));
}

/// `lorabeam submit --wait` of one adapter's job.
fn submit_and_wait(coordinator: &Coordinator, data: &Path, adapter: &str, out: &Path) {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny-base", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("readme-f64"));
    args.extend(strings(&["--adapter", adapter, "--wait", "--output"]));
    args.push(out.join(format!("{adapter}.jsonl")).to_str().expect("utf-8").into());
    let done = lorabeam(&args);
    assert!(done.status.success(), "submit failed: {}", String::from_utf8_lossy(&done.stderr));
}

fn run(together: bool, lines: usize) -> (Measured, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let adapters = adapter_dir(d, &["flipped=-1.0", "half=0.5", "double=2.0"]);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), lines, d, "data.jsonl");
    let out = d.join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let redis = Redis::start(d);
    let coordinator =
        Coordinator::start(&redis, d, None, &["--max-jobs-per-client", "64", "--serve-model-ids", "tiny-base"]);
    let started = Instant::now();
    let mut peak_rss_mib = Vec::new();
    if together {
        let worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
        sweep(&coordinator, &data, &out);
        peak_rss_mib.push(support::peak_rss_mib(worker.pid()));
    } else {
        for adapter in ADAPTERS {
            let mut worker = adapter_worker(&redis, &coordinator.url(), d, adapter, "tiny-base", &adapters, &[]);
            submit_and_wait(&coordinator, &data, adapter, &out);
            peak_rss_mib.push(support::peak_rss_mib(worker.pid()));
            assert!(worker.terminate(Duration::from_secs(30)), "the worker did not stop");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    (Measured { seconds, peak_rss_mib }, out, dir)
}

fn main() {
    let lines = std::env::var("LORABEAM_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(126);
    let text = std::fs::read_to_string(conformance_dir().join("data/e2e_test_public.jsonl")).expect("data");
    let contexts: std::collections::HashSet<String> = text
        .lines()
        .take(lines)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["context"].to_string())
        .collect();
    let (sweep, sweep_out, _a) = run(true, lines);
    let (single, single_out, _b) = run(false, lines);
    for adapter in ADAPTERS {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(format!("{adapter}.jsonl"))).expect("output");
        assert_eq!(read(&sweep_out), read(&single_out), "{adapter}: the sweep's output differs from its own run");
    }
    let total = ADAPTERS.len() * lines;
    println!("tiny fixture base, 4 loralib adapters, {lines} public lines each (README configuration, f64, 1 thread)");
    println!("| run | workers | seconds | lines/s | items/s | worker peak RSS |");
    println!("|---|---|---|---|---|---|");
    for (name, m) in [("one sweep, 4 adapters in one worker", &sweep), ("4 single-adapter runs in turn", &single)] {
        let rss: Vec<String> = m.peak_rss_mib.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "| {name} | {} | {:.1} | {:.2} | {:.3} | {} MiB |",
            m.peak_rss_mib.len(),
            m.seconds,
            total as f64 / m.seconds,
            (ADAPTERS.len() * contexts.len()) as f64 / m.seconds,
            rss.join(", ")
        );
    }
    println!("outputs: identical, adapter by adapter");
}
