//! How long the running batch stalls while its worker loads a new adapter. One worker serves a
//! gpt2.sm-shaped random base (f32, one thread, a batch of 4 rows); a base job runs (beam 4, so
//! one item at a time); once a third of its lines are stored, a one-line job names a large adapter not yet loaded (loralib c_attn, rank
//! `LORABEAM_BENCH_STALL_RANK`, default 512: 75 MiB on disk). The bench polls the base job's
//! stored results and prints the longest gap between two of them before the load and while it
//! runs, and the base job's seconds.
//!
//! A worker that reads the adapter on its engine thread stops every running row for the whole
//! read; one that reads it on a loader thread keeps decoding. To measure both side by side, set
//! `LORABEAM_BENCH_BASELINE_WORKER` and `LORABEAM_BENCH_BASELINE_COORDINATOR` to another
//! build's binaries (main before the loader thread, say): each round runs the baseline pair,
//! then this tree's.
//!
//! cargo bench --bench adapter_stall   (LORABEAM_BENCH_ROUNDS, default 2)

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lorabeam_worker::checkpoint::save_torch_checkpoint;
use lorabeam_worker::model::{config_json, synthetic_checkpoint, Gpt2Config, LoraConfig, ModelCard};
use support::cluster::{binary, wait_until, Coordinator, Process, Redis};
use support::{conformance_dir, head, lorabeam, strings};

const LINES: usize = 24;
/// Beam 4 in a batch of 4 rows: one item at a time, so results arrive one every few steps and
/// a stall shows as a long gap between two of them.
const FLAGS: &[&str] = &["--beam", "4", "--no_repeat_ngram_size", "0", "--eval_len", "8", "--seq_len", "256"];
const MAX_ROWS: &str = "4";

/// The base checkpoint, its config and an adapter directory holding `big.pt`.
fn model_files(dir: &Path, rank: usize) -> (PathBuf, PathBuf, PathBuf) {
    let config = Gpt2Config::from_card(ModelCard::Small);
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config_json(&config)).expect("write config");
    let base = dir.join("base.pt");
    let base_lora = LoraConfig { rank: 0, alpha: 32.0, base_only: true };
    save_torch_checkpoint(&base, &synthetic_checkpoint(&config, base_lora, 1)).expect("write base");
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&adapters).expect("mkdir");
    let lora = LoraConfig { rank, alpha: 32.0, base_only: false };
    let only_lora: Vec<_> =
        synthetic_checkpoint(&config, lora, 2).into_iter().filter(|(k, _)| k.contains("lora_")).collect();
    save_torch_checkpoint(&adapters.join("big.pt"), &only_lora).expect("write adapter");
    (config_path, base, adapters)
}

fn start_worker(
    bin: &Path,
    redis: &Redis,
    coordinator: &Coordinator,
    dir: &Path,
    files: &(PathBuf, PathBuf, PathBuf),
) -> Process {
    let (config, base, adapters) = files;
    let mut command = Command::new(bin);
    command
        .args(["--redis-url", &redis.url(), "--coordinator", &coordinator.url(), "--model-id", "sm"])
        .args(["--worker-name", "w", "--device", "cpu", "--threads", "1", "--dtype", "f32"])
        .args(["--metrics-listen", "127.0.0.1:0", "--max-adapter-mib", "1024", "--lora_alpha", "32"])
        .args(["--max_rows", MAX_ROWS])
        .arg("--base_checkpoint")
        .arg(base)
        .arg("--model_config")
        .arg(config)
        .arg("--adapter-dir")
        .arg(adapters)
        .env("RUST_LOG", "info");
    Process::from_child(
        command.stderr(std::fs::File::create(dir.join("worker.log")).expect("log")).spawn().expect("worker starts"),
        dir.join("worker.log"),
    )
}

fn submit(coordinator: &Coordinator, data: &Path, adapter: Option<&str>) -> String {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "sm", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(strings(FLAGS));
    args.extend(strings(&["--shard-size", "100"]));
    if let Some(adapter) = adapter {
        args.extend(strings(&["--adapter", adapter]));
    }
    let out = lorabeam(&args);
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Measured {
    gap_before: f64,
    gap_during: f64,
    job_seconds: f64,
}

/// One run: the base job's longest result gaps before and during the adapter's load.
fn run(bin: &Path, coordinator_bin: Option<&Path>, files: &(PathBuf, PathBuf, PathBuf)) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), LINES, d, "data.jsonl");
    let one = head(&data, 1, d, "one.jsonl");
    let redis = Redis::start(d);
    // The test support starts `LORABEAM_COORDINATOR_BIN` when set, else this tree's.
    match coordinator_bin {
        Some(bin) => std::env::set_var("LORABEAM_COORDINATOR_BIN", bin),
        None => std::env::remove_var("LORABEAM_COORDINATOR_BIN"),
    }
    let coordinator = Coordinator::start(&redis, d, None, &["--serve-model-ids", "sm"]);
    let _worker = start_worker(bin, &redis, &coordinator, d, files);
    let job = submit(&coordinator, &data, None);
    let stored = |job: &str| -> usize {
        redis.cli(&["HLEN", &format!("lorabeam:job:{job}:results")]).trim().parse().unwrap_or(0)
    };
    // Results are stored per distinct context (E2E repeats contexts): wait for all of those.
    let items: usize = redis.cli(&["HGET", &format!("lorabeam:job:{job}"), "items"]).parse().expect("the job's items");
    let started = Instant::now();
    let (mut last, mut count) = (Instant::now(), 0);
    let (mut gap_before, mut gap_during) = (0f64, 0f64);
    let mut adapter_job: Option<String> = None;
    let mut loaded = false;
    while count < items {
        assert!(started.elapsed() < Duration::from_secs(900), "the base job did not finish");
        std::thread::sleep(Duration::from_millis(2));
        let now = stored(&job);
        if now == count {
            continue;
        }
        let gap = last.elapsed().as_secs_f64();
        (last, count) = (Instant::now(), now);
        match &adapter_job {
            // The first result also waits for the worker's start and prefill: not counted.
            None if count > 1 => gap_before = gap_before.max(gap),
            Some(_) if !loaded => gap_during = gap_during.max(gap),
            _ => {}
        }
        if adapter_job.is_none() && count >= items / 3 {
            adapter_job = Some(submit(&coordinator, &one, Some("big")));
        }
        if let Some(adapter_job) = &adapter_job {
            loaded = loaded || stored(adapter_job) > 0;
        }
    }
    let job_seconds = started.elapsed().as_secs_f64();
    if let Some(adapter_job) = adapter_job {
        wait_until("the adapter job", Duration::from_secs(300), || stored(&adapter_job) == 1);
    }
    Measured { gap_before, gap_during, job_seconds }
}

fn main() {
    let rank: usize = std::env::var("LORABEAM_BENCH_STALL_RANK").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let rounds: usize = std::env::var("LORABEAM_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let files = model_files(dir.path(), rank);
    let mib =
        std::fs::metadata(dir.path().join("adapters/big.pt")).map(|m| m.len() as f64 / (1 << 20) as f64).unwrap_or(0.0);
    let mut workers = Vec::new();
    if let Some(baseline) = std::env::var_os("LORABEAM_BENCH_BASELINE_WORKER") {
        let coordinator = std::env::var_os("LORABEAM_BENCH_BASELINE_COORDINATOR").map(PathBuf::from);
        workers.push(("baseline", PathBuf::from(baseline), coordinator));
    }
    workers.push(("this tree", binary("lorabeam-worker"), None));
    println!("gpt2.sm-shaped random base, f32, 1 thread, --max_rows {MAX_ROWS}; base job {LINES} lines ({}); adapter loralib c_attn r={rank}, {mib:.0} MiB", FLAGS.join(" "));
    println!("| round | worker | longest result gap before the load (s) | longest gap during it (s) | base job (s) |");
    println!("|---|---|---|---|---|");
    for round in 1..=rounds {
        for (name, bin, coordinator) in &workers {
            let m = run(bin, coordinator.as_deref(), &files);
            println!("| {round} | {name} | {:.2} | {:.2} | {:.1} |", m.gap_before, m.gap_during, m.job_seconds);
        }
    }
}
