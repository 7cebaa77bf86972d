//! Issue 24's hostile adapters against a real worker serving `--adapter-dir` on loopback: each
//! fails its own job with a short, specific reason, while the worker lives on with its memory
//! bounded and the next normal job completes; an adapter that failed is refused at once after
//! (marked bad through Redis); a worker killed while reading an adapter fails that job at the
//! first redelivery, not after `--max-deliveries` crashes; and a worker is refused at start
//! when it would serve adapters on a model whose LoRA it merged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support;
use support::adapters::{adapter_dir, hostile_adapters, peft_equivalent};
use support::cluster::{adapter_worker, binary, Coordinator, Redis};
use support::*;

/// The adapters' worker serves `tiny-base`, declared so jobs queued before it registers are taken.
const SERVES_BASE: &[&str] = &["--serve-model-ids", "tiny-base"];

/// How much a worker's peak resident set may grow over all the hostile adapters together.
const RSS_GROWTH_MIB: f64 = 256.0;

/// `lorabeam submit --wait` of `data` with `adapter`: whether it exited 0, and its stderr.
fn submit(coordinator: &Coordinator, data: &Path, adapter: &str) -> (bool, String) {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny-base", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(&["--adapter", adapter, "--wait"]));
    let out = lorabeam(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A PEFT adapter equal to the fixture's, but with `lora_alpha` 1e300: finite, and garbage.
fn huge_alpha(adapters: &Path) {
    peft_equivalent(adapters);
    let (from, to) = (adapters.join("loralib_equiv"), adapters.join("alpha"));
    std::fs::rename(&from, &to).expect("rename");
    let config = to.join("adapter_config.json");
    let text = std::fs::read_to_string(&config).expect("config");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["lora_alpha"] = serde_json::json!(1e300);
    std::fs::write(&config, json.to_string()).expect("write");
}

/// `adapters/leak.pt`, a link to a good adapter outside the folder.
fn leak(dir: &Path, adapters: &Path) {
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::copy(adapters.join("fixture.pt"), outside.join("fixture.pt")).expect("copy");
    std::os::unix::fs::symlink(outside.join("fixture.pt"), adapters.join("leak.pt")).expect("link");
}

/// Each hostile adapter, with what its job's failure must say.
const CASES: &[(&str, &[&str])] = &[
    ("deep", &["deep.pt"]),
    ("zip64", &["zip64.pt"]),
    ("memo", &["memo.pt"]),
    ("stride", &["stride.pt"]),
    ("bigconfig", &["adapter_config.json"]),
    ("alpha", &["lora_alpha"]),
    ("leak", &["outside --adapter-dir", "--adapter-dir-follow-links"]),
];

#[test]
fn hostile_adapters_fail_their_jobs_and_the_worker_lives_bounded() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let adapters = adapter_dir(d, &[]);
    hostile_adapters(&adapters, None);
    huge_alpha(&adapters);
    leak(d, &adapters);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, d, "four.jsonl");
    let redis = Redis::start(d);
    let coordinator = Coordinator::start(&redis, d, None, SERVES_BASE);
    let mut worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
    let (ok, stderr) = submit(&coordinator, &data, "fixture");
    assert!(ok, "a good adapter first: {stderr}\n{}", worker.stderr());
    let baseline = peak_rss_mib(worker.pid());
    let mut table = vec![format!("baseline peak RSS {baseline:.0} MiB")];
    for (name, says) in CASES {
        let started = Instant::now();
        let (ok, stderr) = submit(&coordinator, &data, name);
        let reason = stderr.lines().find(|l| l.contains(&format!("adapter `{name}`"))).unwrap_or_default();
        assert!(!ok && !reason.is_empty(), "adapter {name} must fail its job, naming it:\n{stderr}");
        assert!(says.iter().all(|s| reason.contains(s)), "adapter {name}: {reason}");
        assert!(!stderr.contains("frame #") && reason.len() < 600, "adapter {name}: a short reason:\n{stderr}");
        assert!(worker.try_status().is_none(), "adapter {name} killed the worker:\n{}", worker.stderr());
        let peak = peak_rss_mib(worker.pid());
        table
            .push(format!("{name:<10} {:>5.1} s  peak RSS {peak:>6.0} MiB  {reason}", started.elapsed().as_secs_f64()));
    }
    eprintln!("{}", table.join("\n"));
    let growth = peak_rss_mib(worker.pid()) - baseline;
    assert!(growth < RSS_GROWTH_MIB, "peak RSS grew {growth:.0} MiB over the hostile adapters");
    // Marked bad, here and in Redis: the next job naming one fails with the same reason.
    let mark = redis.cli(&["HGET", "lorabeam:model:tiny-base:adapters:bad", "memo"]);
    assert!(mark.contains("memo.pt"), "memo is marked bad in Redis: {mark}");
    let (ok, again) = submit(&coordinator, &data, "memo");
    assert!(!ok && again.contains("memo.pt"), "{again}");
    assert_eq!(worker.stderr().matches("adapter marks").count(), 0, "Redis answered every mark");
    let (ok, stderr) = submit(&coordinator, &data, "fixture");
    assert!(ok, "the next normal job completes: {stderr}\n{}", worker.stderr());
}

/// Whether the worker is reading `adapter` now, by its loading mark in Redis.
fn reading(con: &mut redis::Connection, adapter: &str) -> bool {
    redis::cmd("HEXISTS").arg("lorabeam:model:tiny-base:adapters:loading").arg(adapter).query(con).unwrap_or(false)
}

#[test]
fn a_worker_killed_while_reading_an_adapter_fails_its_job_at_the_first_redelivery() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let adapters = adapter_dir(d, &[]);
    hostile_adapters(&adapters, Some("slow"));
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, d, "four.jsonl");
    let redis = Redis::start(d);
    let coordinator = Coordinator::start(&redis, d, None, SERVES_BASE);
    // Heartbeats of 1 s: a reader silent for 3 s is dead, well within the 6-s lease.
    let flags = ["--heartbeat-secs", "1", "--lease-secs", "6", "--max-deliveries", "3"];
    let mut first = adapter_worker(&redis, &coordinator.url(), d, "w1", "tiny-base", &adapters, &flags);
    let mut con = redis::Client::open(redis.url()).and_then(|c| c.get_connection()).expect("redis");
    let started = Instant::now();
    std::thread::scope(|scope| {
        let job = scope.spawn(|| submit(&coordinator, &data, "slow"));
        while !reading(&mut con, "slow") {
            assert!(started.elapsed() < Duration::from_secs(120), "the worker never read `slow`");
            assert!(!job.is_finished(), "the job ended before the worker read `slow`");
            std::thread::sleep(Duration::from_millis(1));
        }
        first.kill();
        // Restarted under the same name, as a pod's container is.
        let again = d.join("restarted");
        std::fs::create_dir_all(&again).expect("mkdir");
        let mut second = adapter_worker(&redis, &coordinator.url(), &again, "w1", "tiny-base", &adapters, &flags);
        let (ok, stderr) = job.join().expect("submit thread");
        assert!(!ok, "the job fails");
        assert!(stderr.contains("adapter `slow`: worker w1 stopped while loading it"), "{stderr}");
        assert!(second.try_status().is_none(), "the restarted worker lives:\n{}", second.stderr());
        assert!(!second.stderr().contains("loaded adapter"), "it never read `slow` again");
        eprintln!(
            "killed while reading: the job failed {:.1} s after it was submitted",
            started.elapsed().as_secs_f64()
        );
        let (ok, again) = submit(&coordinator, &data, "slow");
        assert!(!ok && again.contains("stopped while loading it"), "refused at once after: {again}");
        let (ok, stderr) = submit(&coordinator, &data, "fixture");
        assert!(ok, "the next normal job completes: {stderr}");
    });
}

#[test]
fn a_worker_serving_adapters_refuses_a_model_with_its_lora_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let adapters: PathBuf = dir.path().join("adapters");
    std::fs::create_dir_all(&adapters).expect("mkdir");
    let out = std::process::Command::new(binary("lorabeam-worker"))
        .args(["--redis-url", "redis://127.0.0.1:1", "--model-id", "m", "--device", "cpu", "--threads", "1"])
        .args(["--metrics-listen", "127.0.0.1:0", "--lora_dim", "4", "--lora_alpha", "32"])
        .arg("--init_checkpoint")
        .arg(fixture("lora_full.pt"))
        .arg("--model_config")
        .arg(fixture("config.json"))
        .arg("--adapter-dir")
        .arg(&adapters)
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused at start:\n{stderr}");
    for says in
        ["serves adapters on a bare base", "carries LoRA tensors", ".lora_A`", "--base_checkpoint", "--lora_dim 0"]
    {
        assert!(stderr.contains(says), "`{says}` missing from:\n{stderr}");
    }
    eprintln!("{}", stderr.lines().rev().find(|l| l.contains("bare base")).unwrap_or_default());
}
