//! Fleet health a user can see, with real processes on loopback (`redis-server`,
//! `lorabeam-coordinator`, `lorabeam-worker`s with the tiny fixture or the echo engine, the
//! `lorabeam` client): unknown model ids refused with the ids served, a declared model waiting
//! for its first worker, `lorabeam workers` and the `lorabeam_workers` gauge, the lease of a
//! worker killed with `kill -9` named in the job's status, and `/healthz` without Redis.

use crate::support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState, JobStatus};
use support::cluster::{http_get, wait_until, worker, Coordinator, Process, Redis};
use support::*;

const LONG: Duration = Duration::from_secs(240);

/// The workers' flags: small batches, and heartbeats every second, so a dead worker drops out
/// of the list in about three.
const WORKER_FLAGS: [&str; 4] = ["--max_rows", "100", "--heartbeat-secs", "1"];

fn data(n: usize, dir: &Path) -> PathBuf {
    head(&conformance_dir().join("data/e2e_test_public.jsonl"), n, dir, &format!("head-{n}.jsonl"))
}

fn status(url: &str, job_id: &str) -> Option<JobStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.to_string()).await.ok()?;
        Some(client.get_job(GetJobRequest { job_id: job_id.into() }).await.ok()?.into_inner())
    })
}

/// Polls GetJob until `check` holds; the last status.
fn wait_status(coordinator: &Coordinator, job_id: &str, what: &str, check: impl Fn(&JobStatus) -> bool) -> JobStatus {
    let mut last = None;
    wait_until(what, LONG, || {
        last = status(&coordinator.url(), job_id);
        last.as_ref().is_some_and(&check)
    });
    last.expect("status")
}

fn submit(coordinator: &Coordinator, model_id: &str, data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", model_id, "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(extra));
    lorabeam(&args)
}

fn submit_detached(coordinator: &Coordinator, data: &Path, extra: &[&str]) -> String {
    let out = submit(coordinator, "tiny", data, extra);
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn client(coordinator: &Coordinator, command: &str) -> String {
    let out = lorabeam(&strings(&[command, "--coordinator", &coordinator.url()]));
    assert!(out.status.success(), "lorabeam {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET path`: the HTTP status code and the body; 0 when nothing answered.
fn http_status(port: u16, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    // A scrape that hangs (on a Redis that is away) reads as no answer, not as a stuck test.
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut response).is_err() {
        return (0, String::new());
    }
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

#[test]
fn unknown_model_ids_are_refused_and_a_declared_one_waits_for_its_first_worker() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &["--serve-model-ids", "tiny"]);
    let four = data(4, dir.path());

    // What hung forever: a model no worker serves. Refused at once, with the ids served.
    let out = submit(&coordinator, "no-such-model", &four, &["--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("FAILED_PRECONDITION") && stderr.contains("no-such-model"), "{stderr}");
    assert!(stderr.contains("model ids served: tiny"), "{stderr}");

    // Declared (scale from zero): taken, and it says what it waits for.
    let job_id = submit_detached(&coordinator, &four, &[]);
    let waiting = "waiting for workers of model tiny: none is live";
    let running = status(&coordinator.url(), &job_id).expect("status");
    assert_eq!((running.state, running.stall.as_str()), (JobState::Queued as i32, waiting));
    assert!(client(&coordinator, "jobs").contains(&format!("stalled: {waiting}")), "jobs shows the stall");
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert!(metrics.contains("lorabeam_workers{model_id=\"tiny\"} 0"), "{metrics}");
    let listed = client(&coordinator, "workers");
    assert!(listed.lines().any(|l| l.starts_with("tiny") && l.contains("(no live worker)")), "{listed}");

    // Its first worker starts: the job completes, and the worker is listed and counted.
    let mut first = worker(&redis, &coordinator.url(), dir.path(), "first", "tiny", &WORKER_FLAGS);
    let done = wait_status(&coordinator, &job_id, "the job to complete", |s| s.state == JobState::Completed as i32);
    assert_eq!(done.stall, "", "a finished job has no stall");
    let listed = client(&coordinator, "workers");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["MODEL", "WORKER", "ROWS", "ITEMS/S", "LAST", "SEEN"]);
    let row: Vec<&str> =
        lines.iter().find(|l| l.contains("first")).expect("the worker's row").split_whitespace().collect();
    assert_eq!(&row[..3], ["tiny", "first", "0/100"], "rows in use of the budget, idle: {listed}");
    assert!(row[3].parse::<f64>().is_ok() && row[5] == "s" && row[6] == "ago", "{listed}");
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert!(metrics.contains("lorabeam_workers{model_id=\"tiny\"} 1"), "{metrics}");

    // Registered is remembered in Redis: another coordinator, declaring only `other`, takes
    // tiny's jobs and lists both ids when it refuses one.
    let second = Coordinator::start(&redis, dir.path(), None, &["--serve-model-ids", "other"]);
    let stderr = String::from_utf8_lossy(&submit(&second, "no-such-model", &four, &[]).stderr).into_owned();
    assert!(stderr.contains("model ids served: other, tiny"), "{stderr}");
    let again = submit_detached(&second, &four, &[]);
    wait_status(&second, &again, "the second job to complete", |s| s.state == JobState::Completed as i32);

    // A worker that stops cleanly leaves the list at once.
    assert!(first.terminate(Duration::from_secs(60)), "the worker exits 0 on SIGTERM");
    let listed = client(&coordinator, "workers");
    assert!(listed.lines().any(|l| l.starts_with("tiny") && l.contains("(no live worker)")), "{listed}");
}

#[test]
fn after_a_kill_9_the_job_names_the_dead_workers_lease_until_another_worker_takes_it_over() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let lease = ["--lease-secs", "8"];
    let flags: Vec<&str> = WORKER_FLAGS.iter().chain(&lease).copied().collect();
    let mut doomed = worker(&redis, &coordinator.url(), dir.path(), "doomed", "tiny", &flags);
    // Beam 10 over 64 tokens (the last flags count) keeps the shards busy long enough.
    let twelve = data(12, dir.path());
    let job_id = submit_detached(&coordinator, &twelve, &["--shard-size", "2", "--beam", "10", "--eval_len", "64"]);
    let watch_log = dir.path().join("watch.out");
    let watch = Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(["watch", &job_id, "--coordinator", &coordinator.url()])
        .stdout(std::fs::File::create(&watch_log).expect("watch log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    let _watch = Process::from_child(watch, dir.path().join("watch.err"));
    wait_status(&coordinator, &job_id, "the first results", |s| s.records_done >= 1);
    doomed.kill();

    let said = "waiting for the lease of worker doomed to expire (about";
    let stalled = wait_status(&coordinator, &job_id, "the stall to name the lease", |s| s.stall.contains(said));
    assert_eq!(stalled.state, JobState::Running as i32);
    wait_until("watch to show the stall", LONG, || {
        std::fs::read_to_string(&watch_log).unwrap_or_default().contains(&format!("stalled: {said}"))
    });
    // Once its heartbeat has expired too, nobody is live to take the shards over.
    wait_status(&coordinator, &job_id, "no live worker", |s| s.stall.contains("none is live"));

    // An heir takes the expired leases over and the job completes. No output is compared here,
    // so the heir is the echo engine: it finishes at once what took the fixture seconds.
    let heir_flags: Vec<&str> = flags.iter().copied().chain(["--engine", "echo"]).collect();
    let _heir = worker(&redis, &coordinator.url(), dir.path(), "heir", "tiny", &heir_flags);
    let done = wait_status(&coordinator, &job_id, "the job to complete", |s| s.state == JobState::Completed as i32);
    assert_eq!((done.records_done, done.stall.as_str()), (12, ""));
}

#[test]
fn healthz_is_not_ready_while_redis_is_down_and_ready_once_it_is_back() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let echo =
        worker(&redis, &coordinator.url(), dir.path(), "echo", "tiny", &["--engine", "echo", "--heartbeat-secs", "1"]);
    assert_eq!(http_status(coordinator.metrics_port, "/healthz"), (200, "ok\n".into()));

    redis.stop();
    let address = format!("redis at 127.0.0.1:{}", redis.port);
    let mut answer = (0, String::new());
    wait_until("/healthz to say not ready", LONG, || {
        answer = http_status(coordinator.metrics_port, "/healthz");
        answer.0 == 503
    });
    assert!(answer.1.starts_with("not ready: ") && answer.1.contains(&address), "{answer:?}");
    // gRPC health says the same, so the chart's gRPC probes see the outage too.
    wait_until("gRPC health to say NOT_SERVING", LONG, || grpc_health(&coordinator.url()) == NOT_SERVING);
    // And /metrics, for the chart's LorabeamRedisUnreachable alert (the gauges read from
    // Redis keep their last values meanwhile).
    wait_until("lorabeam_redis_up 0", LONG, || {
        http_status(coordinator.metrics_port, "/metrics").1.contains("\nlorabeam_redis_up 0\n")
    });
    // Both keep saying where Redis is, on every try.
    let said = format!("cannot reach {address}");
    wait_until("the coordinator's retries", LONG, || coordinator.stderr().matches(&said).count() >= 2);
    wait_until("the worker's retries", LONG, || echo.stderr().matches(&said).count() >= 2);

    redis.restart();
    wait_until("/healthz to be ready again", LONG, || http_status(coordinator.metrics_port, "/healthz").0 == 200);
    wait_until("gRPC health to say SERVING", LONG, || grpc_health(&coordinator.url()) == SERVING);
    wait_until("lorabeam_redis_up 1", LONG, || {
        http_status(coordinator.metrics_port, "/metrics").1.contains("\nlorabeam_redis_up 1\n")
    });
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// The coordinator's gRPC health of the whole server (""), or -1 when it does not answer.
fn grpc_health(url: &str) -> i32 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(url.to_string()).expect("url").connect().await else {
            return -1;
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        health.check(request).await.map_or(-1, |r| r.into_inner().status)
    })
}
