//! A newcomer's first hour (issue 26), with real processes: two workers on one host with
//! their default flags, a job spread over them, data from a pipe, clients that wait for a
//! coordinator not up yet, output into a closed pipe, hostile strings on the terminal, and
//! what Ctrl-C says.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::cluster::{binary, http_get, wait_until, worker_metrics_port, Coordinator, Process, Redis};
use support::*;

const LONG: Duration = Duration::from_secs(240);

fn data() -> PathBuf {
    conformance_dir().join("data/e2e_test_public.jsonl")
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// An echo worker for "tiny" with only the flags it cannot do without: no `--metrics-listen`
/// (nor its variable), as a newcomer starts one.
fn default_worker(redis: &Redis, coordinator: &Coordinator, dir: &Path, name: &str, extra: &[&str]) -> Process {
    let stdout = std::fs::File::create(dir.join(format!("worker-{name}.out"))).expect("stdout file");
    let mut command = Command::new(binary("lorabeam-worker"));
    command
        .args(["--redis-url", &redis.url(), "--coordinator", &coordinator.url(), "--model-id", "tiny"])
        .args(["--engine", "echo", "--worker-name", name])
        .args(extra)
        .env_remove("LORABEAM_METRICS_LISTEN")
        .env("RUST_LOG", "info")
        .stdout(stdout)
        .stderr(std::fs::File::create(dir.join(format!("worker-{name}.log"))).expect("log"));
    Process::from_child(command.spawn().expect("worker starts"), dir.join(format!("worker-{name}.log")))
}

/// `lorabeam ARGS` with standard output a pipe whose reader is already gone (made by Python:
/// `std::io::pipe` is past this crate's MSRV).
fn into_closed_pipe(args: &[&str]) -> Output {
    const CLOSED_PIPE: &str = "import os, subprocess, sys\n\
        r, w = os.pipe()\n\
        os.close(r)\n\
        sys.exit(subprocess.call(sys.argv[1:], stdout=w))\n";
    Command::new("python3")
        .args(["-c", CLOSED_PIPE, env!("CARGO_BIN_EXE_lorabeam")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("python3 runs lorabeam")
}

fn sigint(pid: u32) {
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// Waits for `child` to end, at most `timeout`.
fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let mut status = None;
    wait_until("the process to end", timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status.expect("exited")
}

#[test]
fn two_workers_with_default_flags_share_a_host_and_a_job_from_a_pipe_spreads_over_both() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let _a = default_worker(&redis, &coordinator, dir.path(), "a", &[]);
    let _b = default_worker(&redis, &coordinator, dir.path(), "b", &[]);
    let ports = [worker_metrics_port(dir.path(), "a"), worker_metrics_port(dir.path(), "b")];
    assert_ne!(ports[0], ports[1]);
    for port in ports {
        assert!(http_get(port, "/metrics").contains("lorabeam_worker"), "worker metrics on 127.0.0.1:{port}");
    }
    let url = coordinator.url();
    wait_until("both workers live", LONG, || {
        let out = lorabeam(&strings(&["workers", "--coordinator", &url]));
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        table.lines().filter(|l| l.starts_with("tiny ")).count() == 2
    });

    // 126 lines, 105 contexts, from standard input: one shard per worker, 53 + 52.
    let out = Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(["submit", "--coordinator", &url, "--model-id", "tiny", "--data", "/dev/stdin", "--wait"])
        .stdin(std::fs::File::open(data()).expect("data"))
        .output()
        .expect("lorabeam runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("126 records, 105 distinct contexts, 2 shards"), "{stderr}");
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let output = std::fs::read_to_string(coordinator.output_dir.join(format!("{job_id}.jsonl"))).expect("output");
    assert_eq!(output.lines().count(), 126);
    for name in ["a", "b"] {
        let log = std::fs::read_to_string(dir.path().join(format!("worker-{name}.log"))).unwrap_or_default();
        assert!(!log.contains("panicked"), "{log}");
    }

    // A third on a port in use fails, naming the flag to change.
    let third = format!("127.0.0.1:{}", ports[0]);
    let mut c = default_worker(&redis, &coordinator, dir.path(), "c", &["--metrics-listen", &third]);
    wait_until("the third worker to exit", LONG, || c.try_status().is_some());
    let said = c.stderr();
    assert!(said.contains(&format!("binding {third}")) && said.contains("--metrics-listen"), "{said}");
}

#[test]
fn closed_pipes_long_ids_and_bidi_strings_never_panic_nor_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let url = coordinator.url();
    // A job named with a right-to-left override and a line separator (the name is its file's).
    let hostile = dir.path().join("a\u{202e}lmth.exe\u{2028}b.jsonl");
    std::fs::copy(head(&data(), 2, dir.path(), "two.jsonl"), &hostile).expect("copy");
    let submitted =
        lorabeam(&strings(&["submit", "--coordinator", &url, "--model-id", "tiny", "--data", &path(&hostile)]));
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    // A heartbeat whose worker id is 70,000 characters, past what a format width may be.
    let long_id = format!("w\u{202e}{}", "x".repeat(70_000));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let keys = lorabeam_proto::queue::Keys::default();
    let key = keys.worker("tiny", &long_id);
    let (now, now_s) = (now_ms.to_string(), (now_ms as f64).to_string());
    redis.cli(&["HSET", &key, "worker", &long_id, "model_id", "tiny", "max_rows", "8", "items_per_s", "0"]);
    redis.cli(&["HSET", &key, "last_seen_ms", &now, "lease_ms", "30000"]);
    redis.cli(&["PEXPIRE", &key, "120000"]);
    redis.cli(&["ZADD", &keys.model_workers("tiny"), &now_s, &long_id]);

    let jobs = lorabeam(&strings(&["jobs", "--coordinator", &url]));
    let table = String::from_utf8_lossy(&jobs.stdout);
    assert!(jobs.status.success(), "{}", String::from_utf8_lossy(&jobs.stderr));
    assert!(table.contains("a\\u{202e}lmth.exe\\u{2028}b.jsonl"), "{table}");
    assert!(!table.contains('\u{202e}') && !table.contains('\u{2028}'), "{table}");
    let workers = lorabeam(&strings(&["workers", "--coordinator", &url]));
    let table = String::from_utf8_lossy(&workers.stdout);
    assert!(workers.status.success(), "{}", String::from_utf8_lossy(&workers.stderr));
    assert!(table.contains(&format!("w\\u{{202e}}{}", "x".repeat(70_000))), "the long id, escaped");

    let job_id = String::from_utf8_lossy(&submitted.stdout).trim().to_string();
    for args in [vec!["jobs"], vec!["workers"], vec!["watch", &job_id, "--reconnect-secs", "0"]] {
        let mut args = args.clone();
        args.extend(["--coordinator", &url]);
        let out = into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?} into a closed pipe ends quietly: {:?} {stderr}", out.status);
    }
}

#[test]
fn clients_wait_for_a_coordinator_not_up_yet_and_only_followers_take_reconnect_secs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let address = format!("127.0.0.1:{port}");
    let log = dir.path().join("watch.log");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(["watch", "job-0000000000000000", "--coordinator", &address, "--reconnect-secs", "200"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("lorabeam runs");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("watch to say it retries", LONG, || said().contains("retrying (for up to 200 s)"));
    assert!(watch.try_wait().expect("wait").is_none(), "still waiting: {}", said());
    let redis = Redis::start(dir.path());
    let _coordinator = Coordinator::start(&redis, dir.path(), Some(port), &[]);
    let status = wait_exit(&mut watch, LONG);
    // It reached the coordinator, which knows no such job: a refusal, not a retry.
    assert!(!status.success() && said().contains("NOT_FOUND"), "{}", said());

    for command in ["jobs", "workers", "cancel"] {
        let mut args = strings(&[command, "--reconnect-secs", "5", "--coordinator", &address]);
        if command == "cancel" {
            args.insert(1, "job-0000000000000000".into());
        }
        let out = lorabeam(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("--reconnect-secs"), "{command}: {stderr}");
    }
}

#[test]
fn ctrl_c_on_submit_wait_says_the_job_keeps_running_and_how_to_cancel_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    // "tiny" is served but has no worker: the job waits in the queue.
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let two = head(&data(), 2, dir.path(), "two.jsonl");
    let mut submit = Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--wait", "--data", &path(&two)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lorabeam runs");
    let mut job_id = String::new();
    BufReader::new(submit.stdout.take().expect("stdout")).read_line(&mut job_id).expect("the job id");
    let job_id = job_id.trim().to_string();
    assert!(job_id.starts_with("job-"), "{job_id}");
    sigint(submit.id());
    let out = submit.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains(&format!("job {job_id} keeps running")), "{stderr}");
    assert!(stderr.contains(&format!("`lorabeam cancel {job_id}`")), "{stderr}");
}

/// `run` with the tiny fixture: `data` and `extra` flags, into `work`.
fn run_command(data: &str, work: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lorabeam"));
    command
        .args(["run", "--device", "cpu", "--threads", "1", "--dtype", "f64", "--data", data, "--work_dir", &path(work)])
        .arg("--init_checkpoint")
        .arg(fixture("lora_full.pt"))
        .args(tiny_model_args())
        .args(extra);
    command
}

#[test]
fn run_reads_a_pipe_once_counts_distinct_contexts_and_says_what_ctrl_c_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 20 lines of 8 contexts, decoded with beam 2 in reference batches of 10: the first steps
    // differ by position, the contexts do not.
    let text = std::fs::read_to_string(data()).expect("data");
    let mut contexts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let context = line.split("\"completion\"").next().unwrap_or_default();
        if contexts.len() < 8 && !contexts.iter().any(|c| c.split("\"completion\"").next() == Some(context)) {
            contexts.push(line);
        }
    }
    let twenty: String = (0..20).map(|i| format!("{}\n", contexts[i % 8])).collect();
    let mut run = run_command(
        "/dev/stdin",
        dir.path(),
        &["--beam", "2", "--eval_len", "4", "--seq_len", "256", "--batch_size", "10"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("lorabeam runs");
    std::io::Write::write_all(&mut run.stdin.take().expect("stdin"), twenty.as_bytes()).expect("write");
    let out = run.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("decoded 20 lines (8 distinct contexts)"), "{stderr}");
    let predictions = std::fs::read_to_string(dir.path().join("beam_prediction.jsonl")).expect("the predictions");
    assert_eq!(predictions.lines().count(), 20);

    // Ctrl-C while decoding the whole test set: nothing written, and said so.
    let work = dir.path().join("interrupted");
    let log = dir.path().join("run.log");
    let mut run = run_command(&path(&data()), &work, &["--beam", "10", "--eval_len", "64", "--seq_len", "256"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("lorabeam runs");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    // Off a terminal the first progress line comes as decoding starts.
    wait_until("decoding to start", LONG, || said().contains("decoding: "));
    sigint(run.id());
    let status = wait_exit(&mut run, LONG);
    assert_eq!(status.code(), Some(130), "{}", said());
    assert!(said().contains("contexts were decoded and are lost; nothing was written"), "{}", said());
    assert!(!work.join("beam_prediction.jsonl").exists());
}

#[test]
fn a_model_id_no_worker_served_for_the_retention_is_forgotten_and_its_jobs_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    // Nothing declared: "once" is known only while a worker registered it.
    let coordinator = Coordinator::start_with_env(
        &redis,
        dir.path(),
        None,
        &["--retention-secs", "2"],
        &[("LORABEAM_SERVE_MODEL_IDS", "")],
    );
    let url = coordinator.url();
    let two = head(&data(), 2, dir.path(), "two.jsonl");
    let submit = || lorabeam(&strings(&["submit", "--coordinator", &url, "--model-id", "once", "--data", &path(&two)]));
    let mut once = Command::new(binary("lorabeam-worker"));
    once.args(["--redis-url", &redis.url(), "--coordinator", &url, "--model-id", "once", "--engine", "echo"])
        .args(["--worker-name", "one-off", "--heartbeat-secs", "1", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("once.log")).expect("log"));
    let mut once = Process::from_child(once.spawn().expect("worker starts"), dir.path().join("once.log"));
    wait_until("the one-off worker to be listed", LONG, || {
        String::from_utf8_lossy(&lorabeam(&strings(&["workers", "--coordinator", &url])).stdout).contains("one-off")
    });
    let accepted = submit();
    assert!(accepted.status.success(), "served now: {}", String::from_utf8_lossy(&accepted.stderr));
    assert!(once.terminate(LONG), "the worker stops on SIGTERM");
    // Two seconds after its last heartbeat, the id is forgotten: a job for it is refused.
    wait_until("jobs for the forgotten id to be refused", LONG, || {
        String::from_utf8_lossy(&submit().stderr).contains("no worker serves model id once")
    });
    let listed = String::from_utf8_lossy(&lorabeam(&strings(&["workers", "--coordinator", &url])).stdout).to_string();
    assert!(!listed.contains("once"), "{listed}");
}
