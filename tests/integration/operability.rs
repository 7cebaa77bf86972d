//! Operating the fleet, with real processes on loopback (`redis-server`, `lorabeam-coordinator`,
//! `lorabeam-worker`s with the tiny fixture, the `lorabeam` client): the coordinator's SIGTERM
//! with workers connected, clients riding out a coordinator restart, cancel and scale-to-zero,
//! reused idempotency keys, and what `jobs`, `results`, `cancel` and `submit --wait` tell a user.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState, JobStatus};
use support::cluster::{http_get, wait_until, worker, Coordinator, Process, Redis};
use support::*;

const LONG: Duration = Duration::from_secs(240);

fn data() -> PathBuf {
    conformance_dir().join("data/e2e_test_public.jsonl")
}

/// The first 48 test lines and greedy-f64's golden of them: its reference batches (batch_size
/// 4) stay whole, so the prefix decodes as it does in the whole file.
fn first_48(dir: &Path) -> (PathBuf, PathBuf) {
    let data = head(&data(), 48, dir, "first48.jsonl");
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), 48, dir, "golden48.jsonl");
    (data, golden)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn status(url: &str, job_id: &str) -> Option<JobStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.to_string()).await.ok()?;
        Some(client.get_job(GetJobRequest { job_id: job_id.into() }).await.ok()?.into_inner())
    })
}

fn wait_state(coordinator: &Coordinator, job_id: &str, state: JobState) -> JobStatus {
    let mut last = None;
    wait_until(&format!("{job_id} to be {state:?}"), LONG, || {
        last = status(&coordinator.url(), job_id);
        last.as_ref().is_some_and(|s| s.state == state as i32)
    });
    last.expect("status")
}

fn records_done(coordinator: &Coordinator, job_id: &str) -> u64 {
    status(&coordinator.url(), job_id).map_or(0, |s| s.records_done)
}

/// `lorabeam submit` of `data` with greedy-f64's flags and `extra`.
fn submit_args(coordinator: &Coordinator, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(extra));
    args
}

fn submit_detached(coordinator: &Coordinator, data: &Path, extra: &[&str]) -> String {
    let out = lorabeam(&submit_args(coordinator, data, extra));
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Setup {
    workers: Vec<Process>,
    coordinator: Coordinator,
    redis: Redis,
    dir: tempfile::TempDir,
    _one_fleet: MutexGuard<'static, ()>,
}

/// Redis, a coordinator (with `coordinator_flags`) and workers serving "tiny"; the workers
/// spell their flags in snake case and kebab case alike.
fn setup(workers: &[&str], coordinator_flags: &[&str]) -> Setup {
    let one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, coordinator_flags);
    let flags = ["--max_rows", "100", "--max-kv-mib", "0", "--lease_secs", "3"];
    let workers = workers.iter().map(|n| worker(&redis, &coordinator.url(), dir.path(), n, "tiny", &flags)).collect();
    Setup { workers, coordinator, redis, dir, _one_fleet: one_fleet }
}

fn output_of(coordinator: &Coordinator, job_id: &str) -> String {
    std::fs::read_to_string(coordinator.output_dir.join(format!("{job_id}.jsonl"))).expect("the job's output")
}

#[test]
fn sigterm_with_two_workers_connected_exits_and_a_successor_on_its_ports_ends_the_job_byte_identical() {
    let metrics_port = free_port().to_string();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut fleet = setup(&["a", "b"], &["--metrics_listen", &metrics]);
    let (data, golden) = first_48(fleet.dir.path());
    let job_id = submit_detached(&fleet.coordinator, &data, &["--shard-size", "4"]);
    wait_until("some results", LONG, || records_done(&fleet.coordinator, &job_id) >= 16);
    let port = fleet.coordinator.port;
    // A liveness bound, not a timing: the default grace is 5 s.
    let exited = fleet.coordinator.terminate(Duration::from_secs(30));
    let log = fleet.coordinator.stderr();
    assert!(exited, "the coordinator did not exit 0 within 30 s of SIGTERM:\n{log}");
    for step in ["shutdown: no new connections; closing worker and client streams", "shutdown: gRPC stopped", "stopped"]
    {
        assert!(log.contains(step), "no `{step}` in the log:\n{log}");
    }
    // Both ports are free again: the successor binds them.
    fleet.coordinator = Coordinator::start(&fleet.redis, fleet.dir.path(), Some(port), &["--metrics-listen", &metrics]);
    assert_eq!(fleet.coordinator.metrics_port.to_string(), metrics_port);
    wait_state(&fleet.coordinator, &job_id, JobState::Completed);
    // What a fault-free run writes: the reference's own predictions, byte for byte.
    let golden = std::fs::read_to_string(golden).expect("golden");
    assert_eq!(output_of(&fleet.coordinator, &job_id), golden, "byte-identical to the golden");
    for worker in &fleet.workers {
        let log = worker.stderr();
        assert!(log.contains("the coordinator is shutting down; reconnect to its successor"), "{log}");
    }
    wait_until("every worker to reconnect", Duration::from_secs(60), || {
        fleet.workers.iter().all(|w| w.stderr().contains("reconnected to the coordinator"))
    });
}

/// The goodbye reaches a worker that is still sending. After SIGTERM the coordinator ends a
/// worker's Report stream with UNAVAILABLE ("shutting down; reconnect to its successor") and
/// keeps reading what the worker sends (storing none of it) until the worker closes its side.
/// It used to drop the stream with the goodbye, which makes HTTP/2 reset the worker's sending
/// half: a worker whose next result then failed to send lost the stream as "the report stream
/// closed" without reading why. Here a raw client keeps sending after the goodbye.
#[test]
fn a_draining_coordinator_reads_a_worker_that_is_still_sending_until_it_closes() {
    use lorabeam_proto::v1::{ItemResult, Report, WorkerReport, WorkerServiceClient};
    let mut lone = support::submissions::LoneCoordinator::start(&[]);
    support::rogue::register_consumer(&lone.redis, "w");
    let (url, pid) = (lone.coordinator.url(), lone.coordinator.pid());
    // Threads of its own, so the client's connection sends the stream's end after the test's
    // last await (the coordinator waits for it).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = WorkerServiceClient::connect(url).await.expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let request = support::rogue::as_consumer(tokio_stream::wrappers::ReceiverStream::new(rx), "w");
        let mut confirmations = client.report(request).await.expect("the stream opens").into_inner();
        // A result for a job the coordinator does not hold is dropped without a word.
        let result = || WorkerReport {
            report: Some(Report::Result(ItemResult {
                job_id: "job-0000000000000000".into(),
                shard_id: "s000000".into(),
                entry_id: "1-0".into(),
                predict: vec![1],
                ..Default::default()
            })),
        };
        for _ in 0..3 {
            tx.send(result()).await.expect("the coordinator reads the stream");
        }
        let term = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill runs");
        assert!(term.success());
        let goodbye = confirmations.message().await.expect_err("the stream ends with the goodbye");
        assert_eq!(goodbye.code(), tonic::Code::Unavailable, "{goodbye:?}");
        assert!(goodbye.message().contains("the coordinator is shutting down; reconnect to its successor"));
        // The channel holds one report: each send waits until the last one was taken.
        for k in 0..20 {
            tx.send(result()).await.unwrap_or_else(|_| panic!("send {k} after the goodbye: the stream was reset"));
        }
    });
    assert!(lone.coordinator.terminate(Duration::from_secs(30)), "exits 0 once the worker has closed");
    let log = lone.coordinator.stderr();
    assert!(log.contains("shutdown: a worker stream is closed"), "{log}");
    assert!(!log.contains("grace period over"), "the worker's close ended the stream, not the grace: {log}");
    drop(runtime);
}

#[test]
fn submit_wait_rides_out_a_coordinator_restart_and_writes_the_whole_output() {
    let mut fleet = setup(&["a", "b"], &[]);
    let (data, golden) = first_48(fleet.dir.path());
    let output = fleet.dir.path().join("out.jsonl");
    let log = fleet.dir.path().join("submit.log");
    let flags = ["--shard-size", "4", "--reconnect-secs", "120", "--output", output.to_str().expect("utf-8")];
    let mut client = Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(submit_args(&fleet.coordinator, &data, &flags))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("submit starts");
    let mut job_id = String::new();
    wait_until("the job to be running with some results", LONG, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let word = text.split_whitespace().find(|w| w.starts_with("job-")).unwrap_or_default();
        job_id = word.trim_end_matches(':').to_string();
        !job_id.is_empty() && records_done(&fleet.coordinator, &job_id) >= 16
    });
    let port = fleet.coordinator.port;
    fleet.coordinator.kill();
    // The successor starts once the client has lost the coordinator, so the outage is one it saw.
    wait_until("the client to retry", LONG, || std::fs::read_to_string(&log).unwrap_or_default().contains("retrying"));
    fleet.coordinator = Coordinator::start(&fleet.redis, fleet.dir.path(), Some(port), &[]);
    let mut exit = None;
    wait_until("the client to exit", LONG, || {
        exit = client.try_wait().ok().flatten();
        exit.is_some()
    });
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.is_some_and(|e| e.success()), "submit --wait failed:\n{stderr}");
    assert!(stderr.contains("wrote 48 predictions"), "{stderr}");
    let written = std::fs::read_to_string(&output).expect("the client's output");
    assert_eq!(written, output_of(&fleet.coordinator, &job_id), "the client's file is the coordinator's output");
    // What a fault-free run writes: the reference's own predictions, byte for byte.
    assert_eq!(written, std::fs::read_to_string(golden).expect("golden"), "byte-identical to the golden");
}

#[test]
fn cancel_prints_the_state_lag_returns_to_zero_and_results_give_every_stored_prediction() {
    let fleet = setup(&["a"], &[]);
    let coordinator = &fleet.coordinator;
    // Beam 10 (the last --beam counts) keeps the job running long enough to cancel it.
    let job_id = submit_detached(coordinator, &data(), &["--shard-size", "2", "--beam", "10", "--eval_len", "64"]);
    wait_until("some results", LONG, || records_done(coordinator, &job_id) >= 2);
    let out = lorabeam(&strings(&["cancel", &job_id, "--coordinator", &coordinator.url()]));
    assert!(out.status.success(), "cancel failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&job_id) && printed.contains("cancelled"), "{printed}");
    let cancelled = status(&coordinator.url(), &job_id).expect("status");
    assert_eq!(cancelled.state, JobState::Cancelled as i32);
    assert!(cancelled.records_done < 126);
    assert_eq!(fleet.redis.cli(&["XLEN", "lorabeam:queue:tiny"]), "0", "no shard of the job is left queued");
    let again = lorabeam(&strings(&["cancel", &job_id, "--coordinator", &coordinator.url()]));
    assert!(!again.status.success(), "cancelling twice is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is cancelled"));
    // What KEDA's default trigger (lagCount on group `workers`) reads: nothing is queued.
    let values = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/lorabeam/values.yaml"))
        .expect("chart values");
    assert!(values.contains("metric: lagCount"), "the chart's KEDA trigger reads the group's lag");
    let lag = || {
        let groups = fleet.redis.cli(&["XINFO", "GROUPS", "lorabeam:queue:tiny"]);
        let lines: Vec<&str> = groups.lines().collect();
        lines.iter().position(|l| *l == "lag").and_then(|i| lines.get(i + 1).map(|v| v.to_string()))
    };
    assert_eq!(lag().as_deref(), Some("0"), "XINFO GROUPS after cancel");
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert!(metrics.contains("lorabeam_queue_lag{model_id=\"tiny\"} 0"), "{metrics}");

    let done = status(&coordinator.url(), &job_id).expect("status").records_done as usize;
    let output = fleet.dir.path().join("partial.jsonl");
    let args = ["results", &job_id, "--coordinator", &coordinator.url(), "--output", output.to_str().expect("utf-8")];
    let out = lorabeam(&strings(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a cancelled job's results end in an error: {stderr}");
    assert!(stderr.contains("FAILED_PRECONDITION") && stderr.contains("is cancelled"), "{stderr}");
    assert!(stderr.contains(&format!("{} of its 126 records have no prediction", 126 - done)), "{stderr}");
    let lines = std::fs::read_to_string(&output).expect("every stored prediction was written");
    assert_eq!(lines.lines().count(), done, "one line per record done");

    // The worker is free for a later job, the lag is 0 again once it is done, and the cancelled
    // job never gets an output file.
    let four = head(&data(), 4, fleet.dir.path(), "four.jsonl");
    let next = submit_detached(coordinator, &four, &[]);
    wait_state(coordinator, &next, JobState::Completed);
    assert_eq!(lag().as_deref(), Some("0"), "XINFO GROUPS after the next job");
    assert!(!coordinator.output_dir.join(format!("{job_id}.jsonl")).exists());
}

#[test]
fn a_reused_idempotency_key_with_other_parameters_is_refused_naming_them() {
    let fleet = setup(&[], &[]);
    let coordinator = &fleet.coordinator;
    let four = head(&data(), 4, fleet.dir.path(), "four.jsonl");
    let first = ["--beam", "10", "--eval_len", "64", "--idempotency-key", "k1"];
    let job_id = submit_detached(coordinator, &four, &first);
    let out =
        lorabeam(&submit_args(coordinator, &four, &["--beam", "3", "--eval_len", "16", "--idempotency_key", "k1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ALREADY_EXISTS") && stderr.contains(&job_id), "{stderr}");
    assert!(stderr.contains("beam (was 10, now 3), eval_len (was 64, now 16)"), "{stderr}");
    let other_data = head(&data(), 5, fleet.dir.path(), "five.jsonl");
    let out = lorabeam(&submit_args(coordinator, &other_data, &first));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data (was "), "other data is a difference too");
    let again = lorabeam(&submit_args(coordinator, &four, &first));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), job_id, "the same work is the same job");
    assert!(String::from_utf8_lossy(&again.stderr).contains("existing job"));

    // Served to the network without tokens, the coordinator says so loudly.
    let open = Coordinator::start(&fleet.redis, fleet.dir.path(), None, &["--listen", "0.0.0.0:0"]);
    wait_until("the coordinator's warning", Duration::from_secs(30), || {
        open.stderr().contains("SERVING THE NETWORK WITHOUT AUTHENTICATION")
    });
}

#[test]
fn jobs_is_a_table_and_submit_wait_off_a_terminal_prints_progress_lines() {
    let fleet = setup(&["a"], &[]);
    let coordinator = &fleet.coordinator;
    let twelve = head(&data(), 12, fleet.dir.path(), "twelve.jsonl");
    let out = lorabeam(&submit_args(coordinator, &twelve, &["--wait", "--shard-size", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // stderr is a pipe here, as in CI: lines, not a progress bar.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains(" records ") && l.contains("shards")).collect();
    assert!(!progress.is_empty() && progress.iter().any(|l| l.contains("completed")), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes off a terminal: {stderr}");
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let out = lorabeam(&strings(&["jobs", "--coordinator", &coordinator.url().replace("http://", "")]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("JOB") && lines[0].contains("CREATED (UTC)") && lines[0].ends_with("NAME"), "{table}");
    let row = lines.iter().find(|l| l.starts_with(&job_id)).expect("the job's row");
    assert_eq!(row.find("completed"), lines[0].find("STATE"), "aligned under its header: {table}");
    assert!(row.ends_with("twelve.jsonl"), "{table}");
    let output = coordinator.output_dir.join(format!("{job_id}.jsonl"));
    assert!(table.contains(&format!("output (on the coordinator): {}", output.display())), "{table}");
    // Outputs honour the umask (the runner's is 022 or 002), not tempfile's 0600.
    let mode = std::fs::metadata(&output).expect("output").permissions().mode() & 0o777;
    assert_eq!(mode & 0o644, 0o644, "mode {mode:o}");
    assert!(!coordinator.stderr().contains('\u{1b}'), "the coordinator's log has no colour off a terminal");
}

/// With Redis unreachable, the coordinator and a worker say so on every try, naming where.
#[test]
fn without_redis_coordinator_and_worker_log_each_retry_naming_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let spawn = |name: &str, args: &[&str]| {
        let log = dir.path().join(format!("{name}.log"));
        let child = Command::new(support::cluster::binary(name))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("starts");
        Process::from_child(child, log)
    };
    let output = dir.path().join("out");
    let coordinator = spawn(
        "lorabeam-coordinator",
        &[
            "--redis-url",
            &url,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--output-dir",
            output.to_str().expect("utf-8"),
        ],
    );
    let worker = spawn(
        "lorabeam-worker",
        &["--redis-url", &url, "--model-id", "m", "--engine", "echo", "--metrics-listen", "127.0.0.1:0"],
    );
    let said = format!("cannot reach redis at 127.0.0.1:{port}");
    for process in [&coordinator, &worker] {
        wait_until("two logged retries", Duration::from_secs(60), || process.stderr().matches(&said).count() >= 2);
    }
}
