//! The fleet with its files in a bucket: a real S3-compatible server (moto, authentication on),
//! `redis-server`, the coordinator and a worker on loopback. The coordinator reads the job's
//! data from the store (`submit --data s3://…`; the client has no credentials at all) and
//! uploads its output (`--output-dir s3://…`); the worker fetches adapters by name from
//! `--adapter-dir s3://…` with read-only credentials. The output in the bucket is the golden,
//! byte for byte. A missing object, a denied credential (at start, on the worker, and revoked
//! while the coordinator runs) and an adapter replaced while its job runs each fail with their
//! own error, and lose nothing.

use crate::support;

use std::path::{Path, PathBuf};

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState, JobStatus};
use support::adapters::{adapter_dir, peft_equivalent};
use support::cluster::{adapter_worker_with, binary, wait_until, Coordinator, Process, Redis};
use support::s3::{Who, S3};
use support::*;

/// The greedy golden's batches (batch_size 4) stay whole in its first 40 lines.
const LINES: usize = 40;

fn status(coordinator: &Coordinator, job_id: &str) -> JobStatus {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        client.get_job(GetJobRequest { job_id: job_id.into() }).await.expect("get_job").into_inner()
    })
}

/// `lorabeam submit` of the object `data_url` with `adapter`, the golden's flags, and `extra`;
/// whether it exited 0, its stderr, and the job id it printed (if any). The client gets no
/// credentials: only the coordinator reads the bucket.
fn submit(coordinator: &Coordinator, data_url: &str, adapter: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny-base"]);
    args.extend(strings(&["--data", data_url, "--adapter", adapter]));
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(extra));
    let out = lorabeam(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let job_id = stderr
        .split_whitespace()
        .chain(stdout.split_whitespace())
        .find(|word| word.starts_with("job-"))
        .map(|word| word.trim_end_matches(':').to_string())
        .unwrap_or_default();
    (out.status.success(), stderr, job_id)
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The store with the adapters (`fixture.pt`, `flipped.pt`, the PEFT folder `loralib_equiv/`)
/// under `adapters/` and the data under `e2e/test.jsonl`; the local data file.
fn stocked_bucket(d: &Path) -> (S3, PathBuf) {
    let s3 = S3::start(d);
    let adapters = adapter_dir(d, &["flipped=-1.0"]);
    peft_equivalent(&adapters);
    s3.put_tree("adapters", &adapters);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), LINES, d, "data.jsonl");
    s3.put("e2e/test.jsonl", &data);
    (s3, data)
}

/// A coordinator whose outputs go to `outputs` in the bucket, as `who`.
fn bucket_coordinator(redis: &Redis, d: &Path, s3: &S3, who: Who, outputs: &str) -> Coordinator {
    let mut env = s3.env(who);
    env.push(("LORABEAM_OUTPUT_DIR".into(), s3.url(outputs)));
    let spool = d.join("spool");
    let extra = ["--serve-model-ids", "tiny-base", "--no-meteor", "--output-spool-dir", spool.to_str().expect("utf-8")];
    Coordinator::start_with_env(redis, d, None, &extra, &pairs(&env))
}

fn bucket_worker(redis: &Redis, coordinator: &Coordinator, d: &Path, s3: &S3, who: Who, extra: &[&str]) -> Process {
    let cache = d.join("adapter-cache");
    let mut args = vec!["--adapter-cache-dir", cache.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    adapter_worker_with(redis, &coordinator.url(), d, ("w", "tiny-base"), &s3.url("adapters/"), &args, &s3.env(who))
}

#[test]
fn a_job_with_its_data_adapters_and_output_in_a_bucket_equals_the_golden() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (s3, data) = stocked_bucket(d);
    let redis = Redis::start(d);
    let coordinator = bucket_coordinator(&redis, d, &s3, Who::Writer, "runs/7");
    let worker = bucket_worker(&redis, &coordinator, d, &s3, Who::Reader, &[]);
    let data_url = s3.url("e2e/test.jsonl");
    let wait = ["--shard-size", "4", "--idempotency-key", "k-fixture", "--wait"];

    let (ok, stderr, job_id) = submit(&coordinator, &data_url, "fixture", &wait);
    assert!(ok, "{stderr}\n{}\n{}", coordinator.stderr(), worker.stderr());
    let done = status(&coordinator, &job_id);
    assert_eq!(done.state, JobState::Completed as i32, "{done:?}");
    assert_eq!(done.output_path, format!("{}/{job_id}.jsonl", s3.url("runs/7")));
    assert_eq!(
        (done.data_url.as_str(), done.data_bytes),
        (data_url.as_str(), std::fs::metadata(&data).expect("data").len())
    );
    assert!(!done.data_etag.is_empty(), "the job records the object's ETag");
    let from_bucket = d.join("from-bucket.jsonl");
    s3.get(&format!("runs/7/{job_id}.jsonl"), &from_bucket);
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), LINES, d, "golden.jsonl");
    eprintln!("the bucket's output against the public golden: {}", compare(&golden, &from_bucket, 1.0));
    let bytes = |path: &Path| std::fs::read(path).expect("read");
    assert!(bytes(&from_bucket) == bytes(&golden), "the output in the bucket is the golden, byte for byte");
    assert_eq!(s3.list("runs/7/"), [format!("runs/7/{job_id}.jsonl")], "only the output: no probe, no parts");

    // The PEFT folder (made by peft, equal to the fixture's adapter) is fetched as a folder.
    let (ok, stderr, peft_job) = submit(&coordinator, &data_url, "loralib_equiv", &["--shard-size", "4", "--wait"]);
    assert!(ok, "{stderr}\n{}", worker.stderr());
    let peft_output = d.join("peft.jsonl");
    s3.get(&format!("runs/7/{peft_job}.jsonl"), &peft_output);
    eprintln!("the PEFT adapter from the bucket against the golden: {}", compare(&golden, &peft_output, 1.0));

    // The same key and the same object: the same job. Each adapter was fetched once.
    let (ok, stderr, again) = submit(&coordinator, &data_url, "fixture", &wait);
    assert!(ok && again == job_id && stderr.contains("existing job"), "{stderr}");
    let log = worker.stderr();
    assert_eq!(log.matches("adapter fetched from object storage").count(), 2, "{log}");

    // The object replaced: under the same key it is other work, named as such.
    let four = head(&data, 4, d, "four.jsonl");
    s3.put("e2e/test.jsonl", &four);
    let (ok, stderr, _) = submit(&coordinator, &data_url, "fixture", &wait);
    assert!(!ok && stderr.contains("ALREADY_EXISTS") && stderr.contains("data_url's object (was ETag"), "{stderr}");
}

#[test]
fn missing_objects_and_denied_credentials_each_fail_with_their_own_error() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (s3, _) = stocked_bucket(d);
    let redis = Redis::start(d);

    // A coordinator that could not publish its outputs says so when it starts.
    let mut env = s3.env(Who::Reader);
    env.push(("LORABEAM_OUTPUT_DIR".into(), s3.url("runs/denied")));
    let out = std::process::Command::new(binary("lorabeam-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--redis-url", &redis.url()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("coordinator runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a read-only --output-dir must refuse to start");
    assert!(
        text.contains("s3://lorabeam-test/runs/denied/.lorabeam-write-check-") && text.contains("access denied"),
        "{text}"
    );
    assert!(!text.contains(&s3.env(Who::Reader)[4].1), "the secret is never printed: {text}");

    let coordinator = bucket_coordinator(&redis, d, &s3, Who::Writer, "runs/8");
    let worker = bucket_worker(&redis, &coordinator, d, &s3, Who::WrongSecret, &[]);
    let wait = ["--shard-size", "4", "--wait"];
    // No such data object: refused at submission, nothing queued.
    let (ok, stderr, job) = submit(&coordinator, &s3.url("e2e/missing.jsonl"), "fixture", &wait);
    assert!(!ok && job.is_empty(), "{stderr}");
    assert!(
        stderr.contains("NOT_FOUND") && stderr.contains("s3://lorabeam-test/e2e/missing.jsonl: no such object"),
        "{stderr}"
    );
    // A client cannot make the coordinator read its own files.
    let (ok, stderr, _) = submit(&coordinator, "file:///etc/passwd", "", &wait);
    assert!(!ok && stderr.contains("file:///etc/passwd"), "{stderr}");
    // The worker's credential is refused: the job fails naming the adapter and the denial.
    let (ok, stderr, job_id) = submit(&coordinator, &s3.url("e2e/test.jsonl"), "fixture", &wait);
    assert!(!ok, "{stderr}");
    let failed = status(&coordinator, &job_id);
    assert_eq!(failed.state, JobState::Failed as i32, "{failed:?}");
    assert!(
        failed.error.contains("adapter `fixture`: s3://lorabeam-test/adapters/fixture")
            && failed.error.contains("access denied"),
        "{}",
        failed.error
    );
    assert!(!failed.error.contains("not-the-secret"), "{}", failed.error);
    // The worker lives on: a job of the bare base completes, its output in the bucket.
    let (ok, stderr, base_job) = submit(&coordinator, &s3.url("e2e/test.jsonl"), "", &wait);
    assert!(ok, "{stderr}\n{}", worker.stderr());
    assert_eq!(status(&coordinator, &base_job).output_path, format!("{}/{base_job}.jsonl", s3.url("runs/8")));
    // The coordinator's credentials revoked after it started: the output cannot be uploaded,
    // and nothing is lost: the job ends, says where its output is kept, and streams it.
    s3.revoke_writer();
    let local = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 8, d, "eight.jsonl");
    let (ok, stderr, kept_job) = submit(&coordinator, local.to_str().expect("utf-8"), "", &wait);
    assert!(ok, "{stderr}\n{}", coordinator.stderr());
    let kept = status(&coordinator, &kept_job);
    let spooled = d.join("spool").join(format!("{kept_job}.jsonl"));
    assert_eq!(kept.output_path, spooled.display().to_string());
    assert!(kept.error.contains("the output could not be uploaded to s3://lorabeam-test/runs/8"), "{}", kept.error);
    assert!(kept.error.contains("access denied") && kept.error.contains("it is kept at"), "{}", kept.error);
    let streamed = lorabeam(&strings(&["results", "--coordinator", &coordinator.url(), &kept_job]));
    let streamed = String::from_utf8_lossy(&streamed.stdout).into_owned();
    assert_eq!(
        streamed,
        std::fs::read_to_string(&spooled).expect("the spool's copy"),
        "results stream the kept output"
    );
    assert_eq!(streamed.lines().count(), 8);
    // An adapter that is not in the bucket (the data sent by the client: the coordinator's
    // credentials are gone).
    drop(worker);
    let _reader = bucket_worker(&redis, &coordinator, d, &s3, Who::Reader, &[]);
    let (ok, _, job_id) = submit(&coordinator, local.to_str().expect("utf-8"), "nope", &wait);
    let failed = status(&coordinator, &job_id);
    assert!(
        !ok && failed.error.contains("adapter `nope` not found under --adapter-dir s3://lorabeam-test/adapters"),
        "{}",
        failed.error
    );
}

#[test]
fn an_adapter_replaced_while_its_job_runs_fails_the_rest_of_the_job_and_keeps_what_was_decoded() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (s3, _) = stocked_bucket(d);
    let redis = Redis::start(d);
    let coordinator = bucket_coordinator(&redis, d, &s3, Who::Writer, "runs/9");
    // One shard at a time, so that the job is still running when the adapter is replaced.
    let worker =
        bucket_worker(&redis, &coordinator, d, &s3, Who::Reader, &["--max-shards", "1", "--prefetch-items", "1"]);
    let (ok, stderr, job_id) = submit(&coordinator, &s3.url("e2e/test.jsonl"), "fixture", &["--shard-size", "1"]);
    assert!(ok, "{stderr}");
    wait_until("the job's first results", std::time::Duration::from_secs(120), || {
        status(&coordinator, &job_id).records_done > 0
    });
    // Paused while the adapter is replaced: the shard it holds was started on the old version.
    let pid = worker.pid().to_string();
    let signal = |name: &str| std::process::Command::new("kill").args([name, &pid]).status().expect("kill");
    signal("-STOP");
    s3.put("adapters/fixture.pt", &d.join("adapters/flipped.pt"));
    signal("-CONT");
    wait_until("the job to end", std::time::Duration::from_secs(180), || {
        let state = status(&coordinator, &job_id).state;
        [JobState::CompletedWithFailures, JobState::Completed, JobState::Failed].iter().any(|s| *s as i32 == state)
    });
    let ended = status(&coordinator, &job_id);
    assert_eq!(ended.state, JobState::CompletedWithFailures as i32, "{ended:?}\n{}", worker.stderr());
    assert!(
        ended.error.contains("adapter `fixture` changed in s3://lorabeam-test/adapters/fixture"),
        "{}",
        ended.error
    );
    assert!(ended.error.contains(&format!("while job {job_id} ran")), "{}", ended.error);
    // What was decoded before is kept, each line as the golden has it; the rest is listed.
    let output = d.join("kept.jsonl");
    s3.get(&format!("runs/9/{job_id}.jsonl"), &output);
    let failures = d.join("failures.jsonl");
    s3.get(&format!("runs/9/{job_id}.failures.jsonl"), &failures);
    let kept = std::fs::read_to_string(&output).expect("output");
    let listed = std::fs::read_to_string(&failures).expect("failures");
    assert_eq!(kept.lines().count() + listed.lines().count(), LINES, "every record is in one file or the other");
    assert_eq!(listed.lines().count(), ended.failed_ids.len());
    let golden = std::fs::read_to_string(conformance_dir().join("golden/greedy-f64.jsonl")).expect("golden");
    let golden: Vec<&str> = golden.lines().collect();
    for line in kept.lines() {
        let id: usize = line.split(&[':', ','][..]).nth(1).and_then(|n| n.trim().parse().ok()).expect("an id");
        assert_eq!(line, golden[id], "a kept line decoded with the old version, as the golden");
    }
}
