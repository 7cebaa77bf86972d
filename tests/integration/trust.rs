//! What a worker's report may and may not do to a job, with a real redis-server, coordinator
//! and worker, and a raw WorkerService client sending what a real worker never would.

use crate::support;

use std::time::Duration;

use lorabeam_proto::v1::{
    GetJobRequest, ItemFailed, ItemResult, JobServiceClient, JobState, Report, ShardFinished, SubmitItem, WorkerReport,
    WorkerServiceClient,
};
use support::cluster::{http_get, wait_until, worker, Coordinator, Redis};
use support::rogue::{expire_lease, register_consumer, report_as, take_lease, Lease};
use support::submissions::{chunk, counter, end_of, small, spec, LoneCoordinator};
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
    // The report comes from the shard's lease holder, so only the count is wrong with it.
    let lease = take_lease(&redis, "tiny", "rogue");
    let mut predict = vec![383, 50256];
    predict.resize(32, 0);
    let result = ItemResult {
        job_id: job_id.clone(),
        shard_id: lease.shard_id(),
        item: lease.items()[0],
        predict,
        generated_tokens: u64::MAX,
        traceparent: String::new(),
        entry_id: lease.entry_id.clone(),
    };
    let report = WorkerReport { report: Some(Report::Result(result)) };
    let refused =
        runtime.block_on(report_as(&coordinator.url(), "rogue", vec![report])).expect_err("the report is refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("nothing was stored"), "{}", refused.message());
    assert_eq!(redis.cli(&["HLEN", &format!("lorabeam:job:{job_id}:results")]), "0");
    assert_eq!(redis.cli(&["HGET", &format!("lorabeam:job:{job_id}"), "items_done"]), "0");
    assert_eq!(redis.cli(&["HGET", &format!("lorabeam:job:{job_id}"), "generated_tokens"]), "0");

    // The real worker takes the shard over at once.
    expire_lease(&redis, "tiny", "rogue", &lease.entry_id);
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
    redis.cli(&["XADD", "lorabeam:queue:fake", "*", "shard", "{}"]);
    redis.cli(&["XGROUP", "CREATE", "lorabeam:queue:fake", "workers", "0"]);
    let fake = take_lease(&redis, "fake", "c");
    let (results, failed) = (format!("{job}:results"), format!("{job}:failed"));
    let keys = ["EVALSHA", hash.as_str(), "4", job, results.as_str(), failed.as_str(), "lorabeam:queue:fake"];
    let lease = ["workers", "c", "1", fake.entry_id.as_str()];
    let good_then_bad = ["r", "0", "1,2", "1", "5", "r", "1", "3", "1", "18446744073709551615"];
    let answer = redis.cli(&[&keys[..], &lease[..], &good_then_bad[..]].concat());
    assert_eq!(answer.split_whitespace().next(), Some("-2"), "the script refuses: {answer}");
    // And the lease is checked in the same script: another consumer's entry stores nothing.
    let not_theirs = ["workers", "d", "1", fake.entry_id.as_str()];
    let answer = redis.cli(&[&keys[..], &not_theirs[..], &good_then_bad[..5]].concat());
    assert_eq!(answer.split_whitespace().next(), Some("-3"), "the script refuses: {answer}");
    assert_eq!(redis.cli(&["HLEN", &results]), "0", "not even the good outcome before the bad one");
    assert_eq!(redis.cli(&["HGET", job, "items_done"]), "0");
}

/// A file `submit` cannot read, or a folder, is named as such and makes no job: the data is
/// read whole before anything is sent (and a stream that ended without its DataEnd would be
/// refused), so nothing partial is ever queued.
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

/// Six distinct contexts in shards of two: three shards to lease.
fn six_items() -> Vec<u8> {
    (1..=6).map(|k| format!("{{\"context\": [1, 2, {k}], \"completion\": [4]}}\n")).collect::<String>().into_bytes()
}

fn result(lease: &Lease, item: u32, predict: Vec<u32>) -> WorkerReport {
    WorkerReport {
        report: Some(Report::Result(ItemResult {
            job_id: lease.job_id(),
            shard_id: lease.shard_id(),
            item,
            predict,
            generated_tokens: 3,
            entry_id: lease.entry_id.clone(),
            ..Default::default()
        })),
    }
}

fn finished(lease: &Lease) -> WorkerReport {
    WorkerReport {
        report: Some(Report::Finished(ShardFinished {
            job_id: lease.job_id(),
            shard_id: lease.shard_id(),
            entry_id: lease.entry_id.clone(),
            ..Default::default()
        })),
    }
}

fn failed(lease: &Lease, item: u32) -> WorkerReport {
    WorkerReport {
        report: Some(Report::Failed(ItemFailed {
            job_id: lease.job_id(),
            shard_id: lease.shard_id(),
            item,
            reason: "boom".into(),
            entry_id: lease.entry_id.clone(),
            ..Default::default()
        })),
    }
}

/// A prediction of eval_len 8 as the engine writes one: ended by eos, padded with zeros.
fn padded(tokens: &[u32]) -> Vec<u32> {
    let mut predict = tokens.to_vec();
    predict.resize(8, 0);
    predict
}

/// A worker token lets its holder report only for the shards it holds a lease on (a pending
/// entry of the consumer its stream declares), only their items, and only predictions the job
/// could produce; a lease that expired and was reclaimed is the new holder's. Each hostile
/// report gets its own error, is counted, and stores nothing; the real lease holders' reports
/// still complete the job.
#[test]
fn a_worker_is_trusted_only_for_the_shards_it_holds() {
    let lone = LoneCoordinator::start(&[]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, &lone.runtime);
    let url = coordinator.url();
    let job = runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.clone()).await.expect("connect");
        let mut first = spec(small());
        if let Some(SubmitItem::Spec(s)) = &mut first.item {
            s.shard_size = 2;
        }
        let data = six_items();
        let messages = vec![first, chunk(&data), end_of(&data)];
        client.submit_job(tokio_stream::iter(messages)).await.expect("accepted").into_inner().job_id
    });
    let (a, b) = (take_lease(redis, "tiny", "a"), take_lease(redis, "tiny", "b"));
    assert_eq!((a.job_id(), a.items(), b.items()), (job.clone(), vec![0, 1], vec![2, 3]));
    let stored = || {
        let count = |cmd: &str, key: String| redis.cli(&[cmd, &key]);
        (
            count("HLEN", format!("lorabeam:job:{job}:results")),
            count("HLEN", format!("lorabeam:job:{job}:failed")),
            count("SCARD", format!("lorabeam:job:{job}:shards_done")),
            redis.cli(&["HGET", &format!("lorabeam:job:{job}"), "items_done"]),
        )
    };
    let nothing = || ("0".to_string(), "0".to_string(), "0".to_string(), "0".to_string());
    let (mut other_shard, mut made_up, mut made_up_entry) = (a.clone(), a.clone(), a.clone());
    other_shard.entry_id = b.entry_id.clone();
    made_up.shard["shard_id"] = "s000007".into();
    made_up_entry.entry_id = "1-0".into();
    let mut no_entry = a.clone();
    no_entry.entry_id = String::new();
    let good = padded(&[11, 50256]);
    let not_b = format!("shard s000000: queue entry {} is not leased to consumer `b`", a.entry_id);
    use Code::{InvalidArgument, PermissionDenied};
    let cases: Vec<(&str, &str, WorkerReport, Code, &str)> = vec![
        ("another's lease", "b", result(&a, 0, good.clone()), PermissionDenied, &not_b),
        ("an unproven consumer", "zed", result(&a, 0, good.clone()), PermissionDenied, "no live worker registered it"),
        ("a failure on another's lease", "b", failed(&a, 1), PermissionDenied, "is not leased to consumer"),
        ("a finish on another's lease", "b", finished(&a), PermissionDenied, "is not leased to consumer"),
        ("an entry never leased", "a", result(&made_up_entry, 0, good.clone()), PermissionDenied, "is gone"),
        ("an entry id that is none", "a", finished(&no_entry), InvalidArgument, "`` is not a queue entry id"),
        ("another shard's entry", "a", result(&other_shard, 2, good.clone()), InvalidArgument, "holds shard s000001"),
        ("a made-up shard id", "a", finished(&made_up), InvalidArgument, "not shard s000007"),
        ("an item of another shard", "a", result(&a, 2, good.clone()), InvalidArgument, "has no item 2"),
        ("an item of no shard", "a", result(&a, 25, good.clone()), InvalidArgument, "has no item 25"),
        ("a failure of another item", "a", failed(&a, 5), InvalidArgument, "has no item 5"),
        ("a finish before the results", "a", finished(&a), InvalidArgument, "item 0 has no outcome"),
        ("a million tokens", "a", result(&a, 0, vec![1; 1_000_000]), InvalidArgument, "1000000 token ids, not"),
        ("an unpadded prediction", "a", result(&a, 0, vec![1, 2, 3]), InvalidArgument, "3 token ids, not the job's"),
        ("id 50257", "a", result(&a, 0, padded(&[50257])), InvalidArgument, "token id 50257 at 0 is not in"),
        ("id 2^32-1", "a", result(&a, 0, padded(&[1, u32::MAX])), InvalidArgument, "token id 4294967295 at 1"),
        ("ids after eos", "a", result(&a, 0, padded(&[5, 50256, 0, 9])), InvalidArgument, "follows the end of"),
    ];
    let mut rows = Vec::new();
    for (name, consumer, report, code, expect) in cases {
        let status = runtime.block_on(report_as(&url, consumer, vec![report])).expect_err(name);
        let ok = status.code() == code && status.message().contains(expect) && status.message().len() < 600;
        assert!(ok, "{name}: want {code:?} with {expect:?}, got {:?}: {}", status.code(), status.message());
        assert_eq!(stored(), nothing(), "{name}: nothing is stored");
        rows.push(name);
    }
    // A stream that does not say which consumer it is for is refused as it opens.
    let status = runtime.block_on(async {
        let mut client = WorkerServiceClient::connect(url.clone()).await.expect("connect");
        let reports = tokio_stream::iter(vec![result(&a, 0, good.clone())]);
        client.report(reports).await.map(|_| ()).expect_err("no consumer")
    });
    assert_eq!(status.code(), InvalidArgument, "{}", status.message());
    assert!(status.message().contains("must name its queue consumer in `lorabeam-consumer-bin`"));
    let long = "c".repeat(300);
    let status = runtime.block_on(report_as(&url, &long, vec![finished(&a)])).expect_err("too long");
    assert!(status.message().contains("consumer name must be 1 to 256 bytes, not 300"), "{}", status.message());
    assert_eq!(stored(), nothing());
    eprintln!("hostile worker reports: {} refused, nothing stored", rows.len() + 2);

    // The holders' own reports are taken: a finishes its shard and it is confirmed.
    let confirmed = runtime
        .block_on(report_as(&url, "a", vec![result(&a, 0, good.clone()), failed(&a, 1), finished(&a)]))
        .expect("a's own shard");
    assert_eq!(confirmed.len(), 1);
    assert!(confirmed[0].job_alive && confirmed[0].shard_id == "s000000");
    // a acks its confirmed shard, as a worker does. Then b's lease expires and c takes the
    // shard over: b's late reports are refused, c's taken.
    let queue = "lorabeam:queue:tiny";
    assert_eq!(redis.cli(&["XACK", queue, "workers", &a.entry_id]), "1");
    expire_lease(redis, "tiny", "b", &b.entry_id);
    register_consumer(redis, "c");
    let reclaimed = redis.cli(&["XAUTOCLAIM", queue, "workers", "c", "1000", "0-0", "COUNT", "1", "JUSTID"]);
    assert_eq!(reclaimed.lines().nth(1), Some(b.entry_id.as_str()), "c holds b's shard: {reclaimed}");
    let late = runtime.block_on(report_as(&url, "b", vec![result(&b, 2, padded(&[7]))])).expect_err("b's lease is c's");
    assert_eq!(late.code(), PermissionDenied, "{}", late.message());
    let confirmed = runtime
        .block_on(report_as(&url, "c", vec![result(&b, 2, padded(&[8])), result(&b, 3, padded(&[9])), finished(&b)]))
        .expect("c's reclaimed shard");
    assert_eq!(confirmed.len(), 1);
    assert_eq!(redis.cli(&["HGET", &format!("lorabeam:job:{job}:results"), "2"]), "8,0,0,0,0,0,0,0", "c's, not b's");
    let last = take_lease(redis, "tiny", "d");
    let mut reports: Vec<WorkerReport> = last.items().iter().map(|&i| result(&last, i, padded(&[i]))).collect();
    reports.push(finished(&last));
    runtime.block_on(report_as(&url, "d", reports)).expect("d's shard");
    let status = runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.clone()).await.expect("connect");
        // Polled until final; the bound is for liveness only (a loaded machine is slow).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            let status = client.get_job(GetJobRequest { job_id: job.clone() }).await.expect("get").into_inner();
            if lorabeam_proto::job_state_is_final(status.state) || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        status
    });
    assert_eq!(status.state, JobState::CompletedWithFailures as i32, "{status:?}");
    assert_eq!((status.shards_done, status.shards, status.failed_ids.clone()), (3, 3, vec![1]));
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"not_lease_holder\"}"), 5.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"unproven_consumer\"}"), 1.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"bad_worker_report\"}"), 14.0, "{metrics}");
}

/// A holder of the worker token alone cannot speak for a real worker: it learns the worker's
/// consumer name from ListWorkers and its shard's queue entry, and sends a Report as that
/// consumer, without the secret the worker registered in Redis, or with a guessed one. Both
/// streams are refused PERMISSION_DENIED as they open, nothing is stored, and the job completes
/// with the real worker's results.
#[test]
fn a_forged_report_for_another_workers_consumer_is_refused() {
    use lorabeam_proto::queue::{CONSUMER_METADATA, CONSUMER_SECRET_METADATA};
    use lorabeam_proto::v1::ListWorkersRequest;
    use tonic::metadata::BinaryMetadataValue;
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let _worker = worker(&redis, &coordinator.url(), dir.path(), "w", "tiny", &["--engine", "echo"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let url = coordinator.url();
    let consumer = runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.clone()).await.expect("connect");
        let mut consumer = None;
        for _ in 0..200 {
            let workers = client.list_workers(ListWorkersRequest {}).await.expect("list").into_inner().workers;
            consumer = workers.first().map(|w| w.worker_id.clone());
            if consumer.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        consumer.expect("the worker is listed")
    });
    let forged = |secret: Option<&str>| {
        let report = WorkerReport {
            report: Some(Report::Finished(ShardFinished {
                job_id: "job-0000000000000000".into(),
                shard_id: "s000000".into(),
                entry_id: "1-0".into(),
                ..Default::default()
            })),
        };
        let mut request = tonic::Request::new(tokio_stream::iter(vec![report]));
        request.metadata_mut().insert_bin(CONSUMER_METADATA, BinaryMetadataValue::from_bytes(consumer.as_bytes()));
        if let Some(secret) = secret {
            request
                .metadata_mut()
                .insert_bin(CONSUMER_SECRET_METADATA, BinaryMetadataValue::from_bytes(secret.as_bytes()));
        }
        runtime.block_on(async {
            let mut client = WorkerServiceClient::connect(url.clone()).await.expect("connect");
            client.report(request).await.map(|_| ()).expect_err("a forged stream is refused")
        })
    };
    for (what, secret) in [("no secret", None), ("a guessed secret", Some("0123456789abcdef0123456789abcdef"))] {
        let status = forged(secret);
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {}", status.message());
        assert!(
            status.message().starts_with(&format!("not this worker's consumer: consumer {consumer}")),
            "{what}: {}",
            status.message()
        );
    }
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 6, dir.path(), "six.jsonl");
    let mut args = strings(&["submit", "--coordinator", &url, "--model-id", "tiny", "--wait", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    let out = lorabeam(&args);
    assert!(out.status.success(), "the real worker's reports are taken: {}", String::from_utf8_lossy(&out.stderr));
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"unproven_consumer\"}"), 2.0, "{metrics}");
}
