//! A job's end has one owner, with real processes on loopback (redis-server, the coordinator,
//! an echo worker): a scored job is finalized and scored once; a cancel during scoring wins
//! and publishes nothing; another job's results keep flowing while one is scored; concurrent
//! submissions with one idempotency key all get the one job, which exists for each of them.
//!
//! METEOR runs through a `java` on the coordinator's `PATH` that waits for a gate file before
//! it runs the real java, and counts its runs: the tests hold scoring open for as long as they
//! need, and wait for states, not for time.

use crate::support;

use std::path::PathBuf;
use std::time::Duration;

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState, JobStatus, SubmitItem};
use support::cluster::{http_get, wait_until, worker, Coordinator, Process, Redis};
use support::meteor_shim::JavaShim;
use support::submissions::{chunk, counter, end_of, small, spec, GOOD};
use support::*;

const LONG: Duration = Duration::from_secs(180);

struct Fleet {
    _worker: Process,
    coordinator: Coordinator,
    _redis: Redis,
    java: JavaShim,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let java = JavaShim::new(d, true);
        let redis = Redis::start(d);
        let coordinator = Coordinator::start_with_env(&redis, d, None, &[], &[("PATH", &java.path)]);
        let worker = worker(&redis, &coordinator.url(), d, "echo", "tiny", &["--engine", "echo"]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Self { _worker: worker, coordinator, _redis: redis, java, runtime, dir }
    }

    fn metric(&self, name: &str) -> f64 {
        counter(&http_get(self.coordinator.metrics_port, "/metrics"), name)
    }

    fn status(&self, job_id: &str) -> Option<JobStatus> {
        self.runtime.block_on(async {
            let mut client = JobServiceClient::connect(self.coordinator.url()).await.ok()?;
            Some(client.get_job(GetJobRequest { job_id: job_id.into() }).await.ok()?.into_inner())
        })
    }

    fn wait_state(&self, job_id: &str, state: JobState) -> JobStatus {
        let mut last = None;
        wait_until(&format!("{job_id} to be {state:?}"), LONG, || {
            last = self.status(job_id);
            last.as_ref().is_some_and(|s| s.state == state as i32)
        });
        last.expect("status")
    }

    /// `lorabeam submit` of the first `lines` text lines, scored or not; the job id.
    fn submit(&self, lines: usize, score: bool, name: &str) -> String {
        let data = head(&conformance_dir().join("data/e2e_test_formatted.jsonl"), lines, self.dir.path(), name);
        let url = self.coordinator.url();
        let mut args = strings(&["submit", "--coordinator", &url, "--model-id", "tiny", "--data"]);
        args.push(data.to_str().expect("utf-8").into());
        args.extend(decode_flags("greedy-f64"));
        if score {
            args.push("--score".into());
        }
        let out = lorabeam(&args);
        assert!(out.status.success(), "submit: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the maintenance loop has run `passes` more times.
    fn wait_maintenance(&self, passes: f64) {
        let target = self.metric("lorabeam_maintenance_passes_total") + passes;
        wait_until("maintenance passes", LONG, || self.metric("lorabeam_maintenance_passes_total") >= target);
    }

    fn output(&self, job_id: &str) -> PathBuf {
        self.coordinator.output_dir.join(format!("{job_id}.jsonl"))
    }
}

#[test]
fn a_scored_job_is_finalized_and_scored_exactly_once() {
    let fleet = Fleet::start();
    fleet.java.open_gate();
    let job = fleet.submit(6, true, "six.jsonl");
    let done = fleet.wait_state(&job, JobState::Completed);
    assert!(done.scores.is_some(), "{done:?}");
    // The maintenance loop used to finalize (and score) a complete job a second time.
    fleet.wait_maintenance(2.0);
    assert_eq!(fleet.metric("lorabeam_scoring_runs_total"), 1.0);
    assert_eq!(fleet.metric("lorabeam_jobs_finalized_total"), 1.0);
    assert_eq!(fleet.java.runs(), 1, "one METEOR run");
    assert_eq!(fleet.coordinator.stderr().matches("job completed").count(), 1, "{}", fleet.coordinator.stderr());
}

#[test]
fn a_cancel_during_scoring_wins_and_publishes_nothing() {
    let fleet = Fleet::start();
    let job = fleet.submit(6, true, "six.jsonl");
    wait_until("scoring to start", LONG, || fleet.metric("lorabeam_scoring_runs_total") == 1.0);
    assert_eq!(fleet.status(&job).map(|s| s.state), Some(JobState::Finalizing as i32), "scoring shows as finalizing");
    let out = lorabeam(&strings(&["cancel", &job, "--coordinator", &fleet.coordinator.url()]));
    assert!(out.status.success(), "cancel: {}", String::from_utf8_lossy(&out.stderr));
    wait_until("the finalization to stop", LONG, || fleet.metric("lorabeam_finalizations_lost_total") == 1.0);
    fleet.java.open_gate();
    fleet.wait_maintenance(2.0);
    let status = fleet.status(&job).expect("status");
    assert_eq!(status.state, JobState::Cancelled as i32, "the cancel is not overridden: {status:?}");
    assert!(status.scores.is_none(), "no scores: {status:?}");
    assert!(!fleet.output(&job).exists(), "no output is published for a cancelled job");
    assert_eq!(fleet.metric("lorabeam_jobs_finalized_total"), 0.0);
}

#[test]
fn another_jobs_results_keep_flowing_while_one_is_scored() {
    let fleet = Fleet::start();
    let scored = fleet.submit(6, true, "six.jsonl");
    wait_until("scoring to start", LONG, || fleet.metric("lorabeam_scoring_runs_total") == 1.0);
    let plain = fleet.submit(2, false, "two.jsonl");
    fleet.wait_state(&plain, JobState::Completed);
    let status = fleet.status(&scored).expect("status");
    assert_eq!(status.state, JobState::Finalizing as i32, "the scored job is still being scored: {status:?}");
    fleet.java.open_gate();
    fleet.wait_state(&scored, JobState::Completed);
}

/// `n` submissions of one job with one idempotency key at once; every answer's job id.
async fn submit_concurrently(url: String, key: String, n: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (url, key) = (url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = JobServiceClient::connect(url).await.expect("connect");
            let mut first = spec(small());
            if let Some(SubmitItem::Spec(spec)) = &mut first.item {
                spec.idempotency_key = key;
            }
            let messages = vec![first, chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
            let answer = client.submit_job(tokio_stream::iter(messages)).await.expect("accepted").into_inner();
            let status = client.get_job(GetJobRequest { job_id: answer.job_id.clone() }).await;
            assert!(status.is_ok(), "the job {} exists for every submission: {status:?}", answer.job_id);
            answer.job_id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task"));
    }
    ids
}

#[test]
fn concurrent_submissions_with_one_key_all_get_the_one_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let flags = ["--max-submissions-per-client", "128", "--max-jobs-per-client", "128"];
    let coordinator = Coordinator::start(&redis, dir.path(), None, &flags);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for n in [8, 64] {
        let key = format!("one-key-{n}");
        let ids = runtime.block_on(submit_concurrently(coordinator.url(), key, n));
        assert_eq!(ids.len(), n);
        assert!(ids.iter().all(|id| id == &ids[0]), "{n} submissions, several jobs: {ids:?}");
    }
    let jobs = redis.cli(&["ZCARD", "lorabeam:jobs"]);
    assert_eq!(jobs, "2", "one job per key");
}
