//! What a worker's report may and may not do to a job, with a real redis-server, coordinator
//! and worker, and a raw WorkerService client sending what a real worker never would.

mod support;

use std::time::Duration;

use lorabeam_proto::v1::{ItemResult, JobServiceClient, JobState, Report, WorkerReport, WorkerServiceClient};
use support::cluster::{wait_until, worker, Coordinator, Redis};
use support::*;
use tonic::Code;

/// A count that Redis' `HINCRBY` would refuse after the script had already stored the result
/// (which left the job RUNNING forever) is refused before anything is written: the job takes
/// no part of the report and still completes, identical to the golden.
#[test]
fn a_report_redis_would_refuse_half_way_changes_nothing_and_the_job_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 6, dir.path(), "six.jsonl");
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    let out = lorabeam(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let refused = runtime.block_on(async {
        let mut client = WorkerServiceClient::connect(coordinator.url()).await.expect("connect");
        let result = ItemResult {
            job_id: job_id.clone(),
            shard_id: "s000000".into(),
            item: 0,
            predict: vec![383, 50256],
            generated_tokens: u64::MAX,
            traceparent: String::new(),
        };
        let report = WorkerReport { report: Some(Report::Result(result)) };
        let mut replies = client.report(tokio_stream::iter([report])).await.expect("stream").into_inner();
        replies.message().await.expect_err("the report is refused")
    });
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("nothing was stored"), "{}", refused.message());
    assert_eq!(redis.cli(&["HLEN", &format!("lorabeam:job:{job_id}:results")]), "0");
    assert_eq!(redis.cli(&["HGET", &format!("lorabeam:job:{job_id}"), "items_done"]), "0");
    assert_eq!(redis.cli(&["HGET", &format!("lorabeam:job:{job_id}"), "generated_tokens"]), "0");

    let _worker = worker(&redis, &coordinator.url(), dir.path(), "a", "tiny", &[]);
    let completed = || {
        runtime.block_on(async {
            let Ok(mut client) = JobServiceClient::connect(coordinator.url()).await else { return false };
            let request = lorabeam_proto::v1::GetJobRequest { job_id: job_id.clone() };
            client.get_job(request).await.is_ok_and(|s| s.get_ref().state == JobState::Completed as i32)
        })
    };
    wait_until("the job to complete", Duration::from_secs(120), completed);
    let output = dir.path().join("out.jsonl");
    let out = lorabeam(&strings(&[
        "results",
        &job_id,
        "--coordinator",
        &coordinator.url(),
        "--output",
        output.to_str().expect("utf-8"),
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), 6, dir.path(), "golden.jsonl");
    assert_eq!(compare(&golden, &output, 1.0), "identical: 6/6 (100.00%)");

    // The store script itself checks every argument before its first write, so a count that
    // got past the coordinator's own check still changes nothing (the job ran it: it is loaded).
    let hash = lorabeam_proto::queue_scripts::STORE_OUTCOMES.get_hash().to_string();
    let job = "lorabeam:job:job-0000000000000000";
    redis.cli(&["HSET", job, "state", "running", "items", "2", "items_done", "0", "records_done", "0"]);
    let (results, failed) = (format!("{job}:results"), format!("{job}:failed"));
    let keys = ["EVALSHA", hash.as_str(), "3", job, results.as_str(), failed.as_str()];
    let good_then_bad = ["r", "0", "1,2", "1", "5", "r", "1", "3", "1", "18446744073709551615"];
    let answer = redis.cli(&[&keys[..], &good_then_bad[..]].concat());
    assert_eq!(answer.split_whitespace().next(), Some("-2"), "the script refuses: {answer}");
    assert_eq!(redis.cli(&["HLEN", &results]), "0", "not even the good outcome before the bad one");
    assert_eq!(redis.cli(&["HGET", job, "items_done"]), "0");
}

/// A file `submit` cannot read, or a folder, is named as such and makes no job: the stream
/// ends without its DataEnd, which the coordinator refuses, so nothing partial is ever queued.
#[test]
fn unreadable_data_makes_no_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let submit = |data: &str| {
        let args = ["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data", data];
        lorabeam(&strings(&[&args[..], &["--eval_len", "8", "--seq_len", "64"]].concat()))
    };
    let folder = submit(dir.path().to_str().expect("utf-8"));
    let stderr = String::from_utf8_lossy(&folder.stderr);
    assert!(!folder.status.success() && stderr.contains("is a directory, not a JSONL file"), "{stderr}");
    // Reading address 0 of a process's memory fails with EIO: a read error, not an end of file.
    let unreadable = submit("/proc/self/mem");
    let stderr = String::from_utf8_lossy(&unreadable.stderr);
    assert!(!unreadable.status.success() && stderr.contains("/proc/self/mem"), "{stderr}");
    assert!(String::from_utf8_lossy(&unreadable.stdout).trim().is_empty(), "no job id is printed");
    assert_eq!(redis.cli(&["KEYS", "lorabeam:job*"]), "", "nothing was stored");
}
