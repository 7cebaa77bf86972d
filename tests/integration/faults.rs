//! Fault trials with real processes on loopback: workers killed at seeded random moments,
//! Redis restarted (AOF on), the coordinator killed and restarted, the coordinator frozen for
//! longer than a lease (a network cut as the workers see it), and a worker frozen until its
//! lease expires while it still holds results. Every trial must end with the coordinator's
//! output byte-identical to a fault-free run: no line lost, none duplicated. Prints a table.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState};
use support::cluster::{wait_until, worker, Coordinator, Process, Redis};
use support::*;

const LEASE: &str = "1";
const LONG: Duration = Duration::from_secs(180);

/// A seeded generator (xorshift), so every run tries the same moments.
struct Seeded(u64);

impl Seeded {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

fn job_state(url: &str, job_id: &str) -> Option<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.to_string()).await.ok()?;
        let request = GetJobRequest { job_id: job_id.to_string() };
        Some(client.get_job(request).await.ok()?.into_inner().state)
    })
}

fn submit(coordinator: &Coordinator, data: &Path) -> String {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(&["--shard-size", "2"]));
    let out = lorabeam(&args);
    assert!(out.status.success(), "submit: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_completed(coordinator: &Coordinator, job_id: &str) -> PathBuf {
    eprintln!("waiting for {job_id}");
    wait_until(&format!("{job_id} to complete"), LONG, || {
        job_state(&coordinator.url(), job_id) == Some(JobState::Completed as i32)
    });
    coordinator.output_dir.join(format!("{job_id}.jsonl"))
}

/// Lines lost and duplicated against the baseline, by id.
fn diff(baseline: &str, output: &str) -> (usize, usize) {
    let ids = |text: &str| -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for line in text.lines() {
            let id = line.split(',').next().unwrap_or_default().to_string();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    };
    let (want, got) = (ids(baseline), ids(output));
    let lost = want.keys().filter(|id| !got.contains_key(*id)).count();
    let duplicated = got.values().filter(|&&n| n > 1).count();
    (lost, duplicated)
}

struct Trial {
    name: String,
    lost: usize,
    duplicated: usize,
    identical: bool,
}

#[test]
fn every_fault_ends_byte_identical_to_a_fault_free_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 24, dir.path(), "data.jsonl");
    let mut redis = Redis::start(dir.path());
    let mut coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let lease = ["--lease-secs", LEASE];
    let start_workers = |coordinator: &Coordinator, redis: &Redis, tag: &str| -> Vec<Process> {
        ["a", "b"]
            .iter()
            .map(|n| worker(redis, &coordinator.url(), dir.path(), &format!("{tag}-{n}"), "tiny", &lease))
            .collect()
    };

    // The fault-free run every trial is compared with.
    let mut workers = start_workers(&coordinator, &redis, "baseline");
    let baseline_path = wait_completed(&coordinator, &submit(&coordinator, &data));
    let baseline = std::fs::read_to_string(&baseline_path).expect("baseline");
    drop(workers.drain(..));
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), 24, dir.path(), "golden.jsonl");
    eprintln!("baseline against the reference: {}", compare(&golden, &baseline_path, 1.0));

    let mut trials: Vec<Trial> = Vec::new();
    let mut record = |name: String, output: &Path| {
        let text = std::fs::read_to_string(output).unwrap_or_default();
        let (lost, duplicated) = diff(&baseline, &text);
        trials.push(Trial { name, lost, duplicated, identical: text == baseline });
    };

    let mut seeded = Seeded(0x5eed_1234_abcd_ef01);
    for trial in 0..20 {
        let mut workers = start_workers(&coordinator, &redis, &format!("kill{trial}"));
        let job_id = submit(&coordinator, &data);
        let delay = seeded.next_ms(100, 2500);
        std::thread::sleep(Duration::from_millis(delay));
        let victim = (trial % 2) as usize;
        eprintln!("trial {trial}: kill worker {victim} after {delay} ms");
        workers[victim].kill();
        let output = wait_completed(&coordinator, &job_id);
        record(format!("kill -9 worker {victim} at {delay} ms (seed trial {trial})"), &output);
    }

    // Redis restarted mid-job: state and queue come back from the AOF.
    let _workers = start_workers(&coordinator, &redis, "redis");
    let job_id = submit(&coordinator, &data);
    std::thread::sleep(Duration::from_millis(800));
    redis.restart();
    record("redis restarted mid-job (AOF)".into(), &wait_completed(&coordinator, &job_id));
    drop(_workers);

    // The coordinator killed and restarted on its port.
    let _workers = start_workers(&coordinator, &redis, "coord");
    let job_id = submit(&coordinator, &data);
    std::thread::sleep(Duration::from_millis(800));
    let port = coordinator.port;
    coordinator.kill();
    std::thread::sleep(Duration::from_millis(1500));
    coordinator = Coordinator::start(&redis, dir.path(), Some(port), &[]);
    record("coordinator kill -9 and restart".into(), &wait_completed(&coordinator, &job_id));
    drop(_workers);

    // A network cut as the workers see it: the coordinator frozen past the lease.
    let _workers = start_workers(&coordinator, &redis, "cut");
    let job_id = submit(&coordinator, &data);
    std::thread::sleep(Duration::from_millis(800));
    signal(coordinator.pid(), "STOP");
    std::thread::sleep(Duration::from_millis(2500));
    signal(coordinator.pid(), "CONT");
    record("coordinator unreachable for 2.5 s (lease 1 s)".into(), &wait_completed(&coordinator, &job_id));
    drop(_workers);

    // A slow worker: frozen while it holds shards, so its leases expire and the other worker
    // takes them; then it wakes and reports what it had. It starts alone, so it does hold some.
    let slow = worker(&redis, &coordinator.url(), dir.path(), "slow-a", "tiny", &lease);
    let job_id = submit(&coordinator, &data);
    wait_until("the slow worker to hold a shard", LONG, || {
        !redis.cli(&["XPENDING", "lorabeam:queue:tiny", "workers", "-", "+", "10", "slow-a"]).is_empty()
    });
    signal(slow.pid(), "STOP");
    let other = worker(&redis, &coordinator.url(), dir.path(), "slow-b", "tiny", &lease);
    std::thread::sleep(Duration::from_millis(3000));
    signal(slow.pid(), "CONT");
    record("worker frozen 3 s past its lease, then reports".into(), &wait_completed(&coordinator, &job_id));
    drop((slow, other));

    eprintln!("| trial | fault | lines lost | lines duplicated | byte-identical |");
    eprintln!("|---|---|---|---|---|");
    for (i, t) in trials.iter().enumerate() {
        eprintln!("| {} | {} | {} | {} | {} |", i + 1, t.name, t.lost, t.duplicated, t.identical);
    }
    let failed: Vec<&Trial> = trials.iter().filter(|t| !t.identical || t.lost > 0 || t.duplicated > 0).collect();
    assert!(failed.is_empty(), "{} of {} trials differ from the fault-free run", failed.len(), trials.len());
    assert_eq!(trials.len(), 24);
}
