//! The fleet's plumbing alone: a 100,000-line job through submit → Redis → worker → gRPC →
//! ordered file, with workers on the instant `--engine echo`, for 1 and 4 workers. Prints
//! records/s and the coordinator's peak RSS. `LORABEAM_PLUMBING_LINES` changes the size.
//!
//! cargo bench --bench plumbing

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::Instant;

use support::cluster::{worker, Coordinator, Redis};
use support::{lorabeam, strings};

/// Distinct contexts of 20 to 60 tokens (distinct, so deduplication cannot shrink the job).
fn write_data(path: &std::path::Path, lines: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..lines {
        let len = 20 + i % 41;
        let mut tokens = vec![(i % 50000) as u64, (i / 50000) as u64];
        for _ in 2..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            tokens.push(state % 50257);
        }
        let text: Vec<String> = tokens.iter().map(u64::to_string).collect();
        writeln!(out, "{{\"context\": [{}], \"completion\": [1]}}", text.join(", ")).expect("write");
    }
}

fn main() {
    let lines: usize = std::env::var("LORABEAM_PLUMBING_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data.jsonl");
    write_data(&data, lines);
    let bytes = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
    println!("plumbing: {lines} lines ({:.1} MiB), echo engine, eval_len 32, shard size 100", bytes as f64 / 1048576.0);
    println!("| workers | seconds | records/s | coordinator peak RSS |");
    println!("|---|---|---|---|");
    for workers in [1, 4] {
        let run_dir = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start(run_dir.path());
        let coordinator = Coordinator::start(&redis, run_dir.path(), None, &["--serve-model-ids", "echo"]);
        let _workers: Vec<_> = (0..workers)
            .map(|i| {
                worker(&redis, &coordinator.url(), run_dir.path(), &format!("w{i}"), "echo", &["--engine", "echo"])
            })
            .collect();
        let output = run_dir.path().join("out.jsonl");
        let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "echo", "--data"]);
        args.push(data.to_str().expect("utf-8").into());
        args.extend(strings(&["--eval_len", "32", "--seq_len", "256", "--shard-size", "100", "--wait", "--output"]));
        args.push(output.to_str().expect("utf-8").into());
        let start = Instant::now();
        let out = lorabeam(&args);
        let seconds = start.elapsed().as_secs_f64();
        assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
        let written = std::fs::read_to_string(&output).map(|t| t.lines().count()).unwrap_or(0);
        assert_eq!(written, lines, "every line came back");
        println!(
            "| {workers} | {seconds:.2} | {:.0} | {:.1} MiB |",
            lines as f64 / seconds,
            support::peak_rss_mib(coordinator.pid())
        );
    }
}
