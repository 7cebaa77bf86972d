//! Two coordinators serve one Redis at once, with real processes on loopback: clients and
//! workers are spread across both (each lists both, its own first), one coordinator is killed
//! with `kill -9` mid-job, and every job still ends byte-identical to its golden, scored once,
//! with the dead coordinator's clients finishing through the other.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{wait_until, worker, Coordinator, Process, Redis};
use support::meteor_shim::JavaShim;
use support::*;

const LONG: Duration = Duration::from_secs(420);

/// `lorabeam submit --wait --output` through `coordinators`, as a child process.
fn submit_waiting(coordinators: &str, golden: &str, output: &Path, extra: &[&str], log: &Path) -> Process {
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let mut command = Command::new(env!("CARGO_BIN_EXE_lorabeam"));
    command
        .args(["submit", "--coordinator", coordinators, "--model-id", "tiny", "--wait", "--output"])
        .arg(output)
        .arg("--data")
        .arg(data)
        .args(decode_flags(golden))
        .args(["--shard-size", "8"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    Process::from_child(command.spawn().expect("submit starts"), log.to_path_buf())
}

fn wait_exit(process: &mut Process, what: &str) {
    let started = Instant::now();
    loop {
        if let Some(status) = process.try_status() {
            assert!(status.success(), "{what} failed:\n{}", process.stderr());
            return;
        }
        assert!(started.elapsed() < LONG, "{what} did not finish:\n{}", process.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_coordinator_killed_mid_job_leaves_every_job_whole_through_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // METEOR's JVM starts, counted across both coordinators.
    let java = JavaShim::new(d, false);
    let path = java.path.clone();
    let redis = Redis::start(d);
    let (dir_a, dir_b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&dir_a).expect("mkdir");
    std::fs::create_dir_all(&dir_b).expect("mkdir");
    let mut a = Coordinator::start_with_env(&redis, &dir_a, None, &[], &[("PATH", &path)]);
    let b = Coordinator::start_with_env(&redis, &dir_b, None, &[], &[("PATH", &path)]);
    let (a_first, b_first) = (format!("{},{}", a.url(), b.url()), format!("{},{}", b.url(), a.url()));
    let _w1 = worker(&redis, &a_first, d, "w1", "tiny", &[]);
    let _w2 = worker(&redis, &b_first, d, "w2", "tiny", &[]);
    let (out1, out2) = (d.join("greedy.jsonl"), d.join("truncate.jsonl"));
    let mut first = submit_waiting(&a_first, "greedy-f64", &out1, &[], &d.join("submit-1.log"));
    let mut second = submit_waiting(&b_first, "truncate-f64", &out2, &["--score"], &d.join("submit-2.log"));
    // Mid-job: some results of both jobs are stored.
    let done = |redis: &Redis| -> Vec<u64> {
        let jobs = redis.cli(&["ZRANGE", "lorabeam:jobs", "0", "-1"]);
        jobs.lines()
            .map(|job| redis.cli(&["HGET", &format!("lorabeam:job:{job}"), "records_done"]).parse().unwrap_or(0))
            .collect()
    };
    wait_until("a job to be under way", LONG, || {
        let done = done(&redis);
        done.len() == 2 && done.iter().any(|&n| (8..126).contains(&n))
    });
    a.kill();
    wait_exit(&mut first, "the first job's submit --wait (its coordinator was killed)");
    wait_exit(&mut second, "the second job's submit --wait");
    compare(&conformance_dir().join("golden/greedy-f64.jsonl"), &out1, 1.0);
    compare(&conformance_dir().join("golden/truncate-f64.jsonl"), &out2, 1.0);
    assert_eq!(java.runs(), 1, "the scored job was scored once");
    let states: Vec<String> = redis
        .cli(&["ZRANGE", "lorabeam:jobs", "0", "-1"])
        .lines()
        .map(|job| redis.cli(&["HGET", &format!("lorabeam:job:{job}"), "state"]))
        .collect();
    assert_eq!(states, ["completed", "completed"], "{}", b.stderr());
}
