//! The fleet end to end, with real processes on loopback: `redis-server`, `lorabeam-coordinator`
//! on 127.0.0.1:0, `lorabeam-worker`s holding the tiny fixture, and the `lorabeam` client.
//! Outputs are checked against the reference's goldens with `support::compare` (the code of `lorabeam compare`), which
//! also fails on a missing or duplicated id. A worker killed mid-shard is in `faults`, a
//! coordinator restart and cancel in `operability`, bad input through `lorabeam submit` in
//! `bad_inputs`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::MutexGuard;
use std::time::Duration;

use lorabeam_proto::v1::{JobServiceClient, JobState, JobStatus, Prediction, StreamResultsRequest};
use support::cluster::{wait_until, worker, Coordinator, Process, Redis};
use support::*;

const LONG: Duration = Duration::from_secs(240);

fn data() -> PathBuf {
    conformance_dir().join("data/e2e_test_public.jsonl")
}

/// `lorabeam submit` with a golden's decoding flags; `extra` adds flags (e.g. `--wait`).
fn submit(coordinator: &Coordinator, data: &Path, golden_name: &str, extra: &[&str]) -> Output {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags(golden_name));
    args.extend(strings(extra));
    lorabeam(&args)
}

/// Submits without waiting; returns the job id it printed.
fn submit_detached(coordinator: &Coordinator, data: &Path, golden_name: &str, extra: &[&str]) -> String {
    let out = submit(coordinator, data, golden_name, extra);
    assert!(out.status.success(), "submit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A gRPC client on its own runtime, for what the CLI does not show.
struct Client {
    runtime: tokio::runtime::Runtime,
    url: String,
}

impl Client {
    fn new(coordinator: &Coordinator) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Self { runtime, url: coordinator.url() }
    }

    fn status(&self, job_id: &str) -> Option<JobStatus> {
        self.runtime.block_on(async {
            let mut client = JobServiceClient::connect(self.url.clone()).await.ok()?;
            let request = lorabeam_proto::v1::GetJobRequest { job_id: job_id.into() };
            Some(client.get_job(request).await.ok()?.into_inner())
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

    /// Reads predictions from `offset`, at most `take` of them, then disconnects.
    fn results(&self, job_id: &str, offset: u64, take: usize) -> Vec<Prediction> {
        self.runtime.block_on(async {
            let mut client = JobServiceClient::connect(self.url.clone()).await.expect("connect");
            let request = StreamResultsRequest { job_id: job_id.into(), offset };
            let mut stream = client.stream_results(request).await.expect("stream").into_inner();
            let mut out = Vec::new();
            while out.len() < take {
                match stream.message().await.expect("message") {
                    Some(prediction) => out.push(prediction),
                    None => break,
                }
            }
            out
        })
    }
}

/// `lorabeam results ID --output FILE`, compared with a golden.
fn check_results(coordinator: &Coordinator, job_id: &str, golden: &Path, dir: &Path) -> String {
    let output = dir.join(format!("{job_id}.jsonl"));
    let args = strings(&["results", job_id, "--coordinator", &coordinator.url(), "--output"]);
    let out = lorabeam(&[args, vec![output.to_str().expect("utf-8").into()]].concat());
    assert!(out.status.success(), "results failed: {}", String::from_utf8_lossy(&out.stderr));
    compare(golden, &output, 1.0)
}

/// One test's fleet: Redis, a coordinator, workers serving "tiny", and a gRPC client. Holds
/// the fleet lock (see `support::one_fleet_at_a_time`) until everything is stopped.
struct Setup {
    _workers: Vec<Process>,
    client: Client,
    coordinator: Coordinator,
    _redis: Redis,
    dir: tempfile::TempDir,
    _one_fleet: MutexGuard<'static, ()>,
}

fn setup(workers: &[&str], worker_flags: &[&str]) -> Setup {
    let one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let workers =
        workers.iter().map(|n| worker(&redis, &coordinator.url(), dir.path(), n, "tiny", worker_flags)).collect();
    let client = Client::new(&coordinator);
    Setup { _workers: workers, client, coordinator, _redis: redis, dir, _one_fleet: one_fleet }
}

fn golden_file(name: &str) -> PathBuf {
    conformance_dir().join(format!("golden/{name}.jsonl"))
}

#[test]
fn three_workers_reproduce_the_golden() {
    let fleet = setup(&["a", "b", "c"], &[]);
    let output = fleet.dir.path().join("knobs.jsonl");
    let flags = ["--shard-size", "8", "--wait", "--output", output.to_str().expect("utf-8")];
    let out = submit(&fleet.coordinator, &data(), "knobs-f64", &flags);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "submit failed: {stderr}\n{}", fleet.coordinator.stderr());
    let verdict = compare(&golden_file("knobs-f64"), &output, 1.0);
    eprintln!("3 workers, knobs-f64: {verdict}");
    let served = fleet.coordinator.output_dir.read_dir().expect("outputs").count();
    assert_eq!(served, 1, "the coordinator wrote the job's output under --output-dir");
}

#[test]
fn two_jobs_with_different_parameters_run_at_once() {
    let fleet = setup(&["a", "b"], &[]);
    let dir = fleet.dir.path();
    // The first 48 lines keep truncate-f64's reference batches (batch_size 2) whole.
    let short = head(&data(), 48, dir, "first48.jsonl");
    let golden_short = head(&golden_file("truncate-f64"), 48, dir, "truncate-first48.jsonl");
    let greedy = submit_detached(&fleet.coordinator, &data(), "greedy-f64", &["--shard-size", "6"]);
    let truncate = submit_detached(&fleet.coordinator, &short, "truncate-f64", &["--shard-size", "6"]);
    fleet.client.wait_state(&greedy, JobState::Completed);
    fleet.client.wait_state(&truncate, JobState::Completed);
    eprintln!("greedy: {}", check_results(&fleet.coordinator, &greedy, &golden_file("greedy-f64"), dir));
    eprintln!("truncate: {}", check_results(&fleet.coordinator, &truncate, &golden_short, dir));
}

#[test]
fn results_resume_from_an_offset_while_the_job_runs() {
    let fleet = setup(&["a"], &[]);
    let key = ["--idempotency-key", "resume-test", "--shard-size", "4"];
    let job_id = submit_detached(&fleet.coordinator, &data(), "greedy-f64", &key);
    assert_eq!(submit_detached(&fleet.coordinator, &data(), "greedy-f64", &key), job_id, "same key, same job");
    let first = fleet.client.results(&job_id, 0, 10);
    let running = fleet.client.status(&job_id).expect("status");
    assert_eq!(first.len(), 10);
    let rest = fleet.client.results(&job_id, 10, usize::MAX);
    assert_eq!(running.state, JobState::Running as i32, "the first part was read while the job ran");
    let mut text = String::new();
    for p in first.iter().chain(&rest) {
        lorabeam_core::predictions::format_prediction(&mut text, p.id as usize, &p.predict);
    }
    let output = fleet.dir.path().join("resumed.jsonl");
    std::fs::write(&output, text).expect("write");
    eprintln!("resumed stream: {}", compare(&golden_file("greedy-f64"), &output, 1.0));
}

#[test]
fn an_item_over_the_kv_budget_fails_alone_and_the_job_completes_with_failures() {
    let fleet = setup(&["a"], &["--max-kv-mib", "1"]);
    let dir = fleet.dir.path();
    // Three E2E lines fit 1 MiB of KV cache at beam 4 / eval_len 100 on the tiny model (f64);
    // a 150-token context does not (2 KiB per position: 150 + 4 × 100 positions).
    let mut text = std::fs::read_to_string(head(&data(), 3, dir, "three.jsonl")).expect("data");
    text.push_str(&format!("{{\"context\": [{}]}}\n", vec!["318"; 150].join(", ")));
    let input = dir.join("four.jsonl");
    std::fs::write(&input, text).expect("write");
    let output = dir.join("out.jsonl");
    let mut args = strings(&["submit", "--coordinator", &fleet.coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(input.to_str().expect("utf-8").into());
    args.extend(strings(&["--beam", "4", "--eval_len", "100", "--seq_len", "256", "--wait", "--output"]));
    args.push(output.to_str().expect("utf-8").into());
    let out = lorabeam(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a job with failures is not a success for scripts");
    assert!(stderr.contains("completed with 1 failed record(s)") && stderr.contains("ids: 3"), "{stderr}");
    assert!(stderr.contains("over this worker's budget of 1.0 MiB"), "{stderr}");
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let status = fleet.client.status(&job_id).expect("status");
    assert_eq!(status.state, JobState::CompletedWithFailures as i32);
    assert_eq!(status.failed_ids, vec![3]);
    let served = std::fs::read_to_string(fleet.coordinator.output_dir.join(format!("{job_id}.jsonl"))).expect("output");
    let ids: Vec<&str> = served.lines().map(|l| l.split(',').next().unwrap_or_default()).collect();
    assert_eq!(ids, ["{\"id\": 0", "{\"id\": 1", "{\"id\": 2"], "every other line is there");
    let missing = fleet.coordinator.output_dir.join(format!("{job_id}.failures.jsonl"));
    let missing = std::fs::read_to_string(missing).expect("failures sidecar");
    assert!(missing.starts_with("{\"error\":") || missing.contains("\"id\":3"), "{missing}");
}

#[test]
fn finished_jobs_and_their_outputs_expire_after_the_retention() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &["--retention-secs", "1"]);
    let _echo = worker(&redis, &coordinator.url(), dir.path(), "echo", "tiny", &["--engine", "echo"]);
    let client = Client::new(&coordinator);
    let job_id = submit_detached(&coordinator, &head(&data(), 5, dir.path(), "five.jsonl"), "greedy-f64", &[]);
    client.wait_state(&job_id, JobState::Completed);
    let output = coordinator.output_dir.join(format!("{job_id}.jsonl"));
    assert!(output.exists());
    wait_until("the job to expire", LONG, || client.status(&job_id).is_none() && !output.exists());
    assert_eq!(redis.cli(&["KEYS", &format!("lorabeam:job:{job_id}*")]), "", "every key of the job is gone");
}

/// A job submitted as text with --score: the coordinator scores it at completion, and reports
/// the same five numbers as `lorabeam score` on the job's output; `lorabeam jobs` shows them.
#[test]
fn a_scored_job_reports_what_score_reports_on_its_output() {
    let fleet = setup(&["a"], &[]);
    let dir = fleet.dir.path();
    let text = head(&conformance_dir().join("data/e2e_test_formatted.jsonl"), 24, dir, "text.jsonl");
    let output = dir.join("scored.jsonl");
    let flags = ["--wait", "--score", "--json", "--output", output.to_str().expect("utf-8")];
    let out = submit(&fleet.coordinator, &text, "greedy-f64", &flags);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "submit failed: {stderr}\n{}", fleet.coordinator.stderr());
    assert!(stderr.contains("text input, encoded as gpt2_encode.py --add_bos --add_eos"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fleet_scores = stdout.lines().last().unwrap_or_default().to_string();
    let args = strings(&["score", "--data", text.to_str().expect("utf-8"), "--predictions"]);
    let local = lorabeam(&[args, strings(&[output.to_str().expect("utf-8"), "--json"])].concat());
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let local_scores = String::from_utf8_lossy(&local.stdout).lines().last().unwrap_or_default().to_string();
    assert!(fleet_scores.starts_with("{\"BLEU\":"), "{stdout}");
    assert_eq!(fleet_scores, local_scores, "the fleet's scores are lorabeam score's on its output");
    let jobs = lorabeam(&strings(&["jobs", "--coordinator", &fleet.coordinator.url()]));
    let listing = String::from_utf8_lossy(&jobs.stdout);
    let bleu: serde_json::Value = serde_json::from_str(&fleet_scores).expect("json");
    let shown = format!("BLEU {:.4}", bleu["BLEU"].as_f64().expect("BLEU"));
    assert!(listing.contains(&shown), "jobs shows the scores: {listing}");
    // The first line is the table's header; the job's row follows.
    let job_id = listing.lines().nth(1).and_then(|row| row.split_whitespace().next()).expect("a job").to_string();
    let text = lorabeam(&strings(&["results", &job_id, "--text", "--coordinator", &fleet.coordinator.url()]));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&text.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 24, "one text line per record");
    assert!(lines.iter().all(|l| l["text"].as_str().is_some_and(|t| !t.contains("<|endoftext|>"))), "{lines:?}");
}
