//! Hostile RPCs against a real coordinator and redis-server: malformed job and shard ids,
//! strings and lists past their bounds, worker failure reasons meant for a terminal, and
//! messages over the size limit. Each gets its specific error and stores nothing.

use crate::support;

use lorabeam_proto::v1::{self, JobServiceClient, SubmitItem};
use support::cluster::http_get;
use support::rogue::{as_consumer, register_consumer, take_lease};
use support::submissions::*;
use support::*;
use tonic::Code;

#[test]
fn malformed_job_ids_are_not_found_and_never_reach_redis() {
    use lorabeam_proto::v1::{
        CancelJobRequest, GetJobRequest, ItemResult, Report, ShardFinished, StreamResultsRequest, WatchJobRequest,
        WorkerReport, WorkerServiceClient,
    };
    let lone = LoneCoordinator::start(&[]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, &lone.runtime);
    register_consumer(redis, "w");
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let job = submit_good(&mut client).await;
        let keys = || {
            let mut keys: Vec<String> = redis.cli(&["KEYS", "lorabeam:*"]).lines().map(String::from).collect();
            keys.sort();
            keys
        };
        let before = keys();
        let bad = [
            format!("{job}:results"),
            format!("{job}:plan"),
            format!("{job}:failed"),
            "job-none".to_string(),
            job.to_uppercase(),
            "x".repeat(100_000),
            String::new(),
        ];
        for id in &bad {
            let shown: String = id.chars().take(40).collect();
            let refusals = [
                ("GetJob", client.get_job(GetJobRequest { job_id: id.clone() }).await.map(|_| ())),
                ("WatchJob", client.watch_job(WatchJobRequest { job_id: id.clone() }).await.map(|_| ())),
                ("CancelJob", client.cancel_job(CancelJobRequest { job_id: id.clone() }).await.map(|_| ())),
                (
                    "StreamResults",
                    client.stream_results(StreamResultsRequest { job_id: id.clone(), offset: 0 }).await.map(|_| ()),
                ),
            ];
            for (rpc, answer) in refusals {
                let status = answer.expect_err("a malformed id is refused");
                assert_eq!(status.code(), Code::NotFound, "{rpc}({shown}): {}", status.message());
                assert!(status.message().contains("job ids are `job-` and 16 lowercase hex digits"), "{rpc}");
                assert!(status.message().len() < 200, "{rpc} echoes the id: {} bytes", status.message().len());
            }
        }
        // A worker reporting for a key-shaped id is refused before any key is built.
        let mut workers = WorkerServiceClient::connect(coordinator.url()).await.expect("connect");
        let report = WorkerReport {
            report: Some(Report::Result(ItemResult {
                job_id: format!("{job}:plan"),
                shard_id: "s0".into(),
                item: 0,
                predict: vec![1],
                ..Default::default()
            })),
        };
        let mut confirmations = workers
            .report(as_consumer(tokio_stream::iter(vec![report]), "w"))
            .await
            .expect("stream opens")
            .into_inner();
        let status = confirmations.message().await.expect_err("the report is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains("bad worker report: no job"), "{}", status.message());
        // A shard id goes into a Redis set: one that is not of the issued form is refused too.
        let finished = WorkerReport {
            report: Some(Report::Finished(ShardFinished {
                job_id: job.clone(),
                shard_id: "s".repeat(100_000),
                ..Default::default()
            })),
        };
        let mut confirmations = workers
            .report(as_consumer(tokio_stream::iter(vec![finished]), "w"))
            .await
            .expect("stream opens")
            .into_inner();
        let status = confirmations.message().await.expect_err("the report is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains("is not a shard id") && status.message().len() < 300);
        assert_eq!(keys(), before, "no key was written");
        let status = client.get_job(GetJobRequest { job_id: job.clone() }).await.expect("the real job is intact");
        assert_eq!(status.into_inner().records, 1);
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"redis\"}"), 0.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"corrupt_state\"}"), 0.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"invalid_job_id\"}"), 28.0, "{metrics}");
}

#[test]
fn huge_names_are_refused_and_list_jobs_pages() {
    use lorabeam_proto::v1::ListJobsRequest;
    let lone = LoneCoordinator::start(&[]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, &lone.runtime);
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        // Two 9 MiB names used to make ListJobs too large for everyone.
        for _ in 0..2 {
            let mut huge = spec(small());
            if let Some(SubmitItem::Spec(s)) = &mut huge.item {
                s.name = "n".repeat(9 << 20);
            }
            let status = client
                .submit_job(tokio_stream::iter(vec![huge, chunk(GOOD.as_bytes())]))
                .await
                .expect_err("a 9 MiB name is refused");
            assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
            assert!(status.message().contains("name in bytes is 9437184, over"), "{}", status.message());
            assert!(status.message().len() < 200);
        }
        assert_eq!(redis.cli(&["KEYS", "lorabeam:*"]), "", "nothing stored");
        let mut submitted = Vec::new();
        for _ in 0..5 {
            submitted.push(submit_good(&mut client).await);
        }
        let list = |page_size: u32, page_token: String| {
            let mut client = client.clone();
            async move { client.list_jobs(ListJobsRequest { page_size, page_token }).await.map(|r| r.into_inner()) }
        };
        let all = list(0, String::new()).await.expect("an old client's request: the default page");
        // Oldest first; jobs created in the same millisecond come in id order.
        let in_order: Vec<String> = all.jobs.iter().map(|j| j.job_id.clone()).collect();
        let mut sorted = in_order.clone();
        sorted.sort();
        submitted.sort();
        assert_eq!(sorted, submitted);
        assert_eq!(all.next_page_token, "");
        let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), Vec::new());
        loop {
            let page = list(2, token).await.expect("a page");
            pages.push(page.jobs.len());
            seen.extend(page.jobs.into_iter().map(|j| j.job_id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, [2, 2, 1]);
        assert_eq!(seen, in_order, "every job once, in the same order");
        assert_eq!(list(5000, String::new()).await.expect("clamped").jobs.len(), 5);
        for bad in ["zzz", "12.job-none", &"t".repeat(100_000)] {
            let status = list(2, bad.to_string()).await.expect_err("a token it did not give");
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert!(status.message().contains("is not one this coordinator gave"), "{}", status.message());
            assert!(status.message().len() < 200);
        }
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_limit_rejections_total{limit=\"name_bytes\"}"), 2.0, "{metrics}");
}

#[test]
fn a_huge_failure_reason_is_stored_cut_and_printed_escaped() {
    use lorabeam_proto::v1::{GetJobRequest, ItemFailed, Report, WorkerReport, WorkerServiceClient};
    let lone = LoneCoordinator::start(&[]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, &lone.runtime);
    let reason = format!("\u{1b}[2J\u{1b}[31mPWNED\r{}", "x".repeat(4 << 20));
    let job = runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let job = submit_good(&mut client).await;
        // A worker (or something holding its token) fails the job's only item with 4 MiB.
        let mut workers =
            WorkerServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let lease = take_lease(redis, "tiny", "rogue");
        let failed = WorkerReport {
            report: Some(Report::Failed(ItemFailed {
                job_id: job.clone(),
                shard_id: lease.shard_id(),
                item: 0,
                reason: reason.clone(),
                entry_id: lease.entry_id.clone(),
                ..Default::default()
            })),
        };
        let stream = as_consumer(tokio_stream::iter(vec![failed]), "rogue");
        let mut confirmations = workers.report(stream).await.expect("opens").into_inner();
        while confirmations.message().await.expect("no error").is_some() {}
        // Polled until final; the bound is for liveness only (a loaded machine is slow).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            let status = client.get_job(GetJobRequest { job_id: job.clone() }).await.expect("get").into_inner();
            if lorabeam_proto::job_state_is_final(status.state) || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(status.state, v1::JobState::Failed as i32, "{status:?}");
        assert!(status.error.len() < 4096 + 100, "the reason is stored cut: {} bytes", status.error.len());
        assert!(status.error.contains(&format!("[cut: {} bytes in all]", reason.len())), "{}", &status.error[..80]);
        job
    });
    let stored = redis.cli(&["HSTRLEN", &format!("lorabeam:job:{job}:failed"), "0"]);
    assert!(stored.trim().parse::<usize>().expect("a length") < 4096 + 100, "stored: {stored}");
    let url = coordinator.url();
    for args in [vec!["jobs", "--coordinator", &url], vec!["watch", &job, "--coordinator", &url]] {
        let out = lorabeam(&strings(&args));
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.iter().any(|&b| b == 0x1b || b == b'\r'),
                "{args:?} {stream} prints raw control bytes: {}",
                String::from_utf8_lossy(bytes)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("\\u{1b}[31mPWNED\\r"), "{args:?} shows the reason escaped: {text}");
        assert!(text.len() < 3 * (4096 + 200), "{args:?} printed {} bytes", text.len());
    }
}

#[test]
fn oversize_and_undecodable_messages_are_errors_the_caller_sees() {
    use lorabeam_proto::v1::{
        GetJobRequest, ItemFailed, ListJobsRequest, Report, ShardConfirmed, WatchJobRequest, WorkerReport,
        WorkerServiceClient,
    };
    let lone = LoneCoordinator::start(&["--max-message-bytes", "1048576"]);
    let (coordinator, runtime) = (&lone.coordinator, &lone.runtime);
    register_consumer(&lone.redis, "w");
    let huge_id = format!("job-{}", "0".repeat(2 << 20));
    let too_large = |rpc: &str, status: tonic::Status| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{rpc}: {}", status.message());
        assert!(status.message().contains("(--max-message-bytes): decoded message length too large"), "{rpc}");
    };
    runtime.block_on(async {
        let mut client =
            JobServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let status = client.get_job(GetJobRequest { job_id: huge_id.clone() }).await.expect_err("too large");
        too_large("GetJob", status);
        let status = client.watch_job(WatchJobRequest { job_id: huge_id.clone() }).await.expect_err("too large");
        too_large("WatchJob", status);
        let messages = vec![spec(small()), chunk(&vec![b' '; 2 << 20])];
        too_large("SubmitJob", client.submit_job(tokio_stream::iter(messages)).await.expect_err("too large"));

        // An 18 MiB-style report (here 2 MiB over a 1 MiB limit) ends the stream with the error.
        let job = submit_good(&mut client).await;
        let mut workers =
            WorkerServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let failed = WorkerReport {
            report: Some(Report::Failed(ItemFailed {
                job_id: job.clone(),
                shard_id: "s".into(),
                item: 0,
                reason: "r".repeat(2 << 20),
                ..Default::default()
            })),
        };
        let stream = as_consumer(tokio_stream::iter(vec![failed]), "w");
        let mut confirmations = workers.report(stream).await.expect("opens").into_inner();
        too_large("Report", confirmations.message().await.expect_err("the worker learns its report was refused"));

        // A frame that is not a WorkerReport (field 1 as a varint) is an error too, not an OK end.
        let channel =
            tonic::transport::Channel::from_shared(coordinator.url()).expect("url").connect().await.expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/lorabeam.v1.WorkerService/Report");
        let codec = tonic_prost::ProstCodec::<ListJobsRequest, ShardConfirmed>::default();
        let garbage = tokio_stream::iter(vec![ListJobsRequest { page_size: 5, page_token: String::new() }]);
        let mut answers = grpc.streaming(as_consumer(garbage, "w"), path, codec).await.expect("opens").into_inner();
        let status = answers.message().await.expect_err("an undecodable frame is refused");
        assert_eq!(status.code(), Code::Internal, "{}", status.message());
        assert!(status.message().contains("decode"), "{}", status.message());
        let status = client.get_job(GetJobRequest { job_id: job }).await.expect("the job is intact").into_inner();
        assert_eq!(status.records_done, 0, "nothing of the refused reports was stored");
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_limit_rejections_total{limit=\"message_bytes\"}"), 4.0, "{metrics}");
    let log = coordinator.stderr();
    assert!(log.lines().filter(|l| l.contains("WARN") && l.contains("worker reports refused")).count() >= 2, "{log}");
}
