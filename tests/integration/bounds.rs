//! Bounds on what one client can hold, against a real coordinator and redis-server over raw
//! gRPC: the per-client job limit under racing submissions, the in-flight byte budget, the
//! per-client stream cap and the idle timeout of unfinished submissions, and followers
//! (WatchJob, StreamResults) that stop reading Redis once their client has gone.

use crate::support;

use std::time::Duration;

use lorabeam_proto::v1::{JobServiceClient, StreamResultsRequest, SubmitJobRequest, WatchJobRequest};
use support::cluster::{http_get, wait_until, Redis};
use support::submissions::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

type Answer = tokio::task::JoinHandle<Result<String, tonic::Status>>;

/// A SubmitJob whose stream stays open until its sender is dropped.
fn open_submission(
    client: &JobServiceClient<tonic::transport::Channel>,
    messages: Vec<SubmitJobRequest>,
) -> (mpsc::Sender<SubmitJobRequest>, Answer) {
    let (tx, rx) = mpsc::channel(messages.len() + 1);
    for message in messages {
        tx.try_send(message).expect("room");
    }
    let mut client = client.clone();
    let answer =
        tokio::spawn(async move { client.submit_job(ReceiverStream::new(rx)).await.map(|r| r.into_inner().job_id) });
    (tx, answer)
}

/// A runtime whose tasks run while the test thread blocks (on a metrics read, say).
fn threaded() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn gauge(port: u16, name: &str) -> f64 {
    counter(&http_get(port, "/metrics"), name)
}

/// 24 SubmitJob streams half-closed together, against a limit of 16: exactly 16 become jobs.
/// Each has sent its whole submission and waits for the stream's end, so all 24 pass the early
/// check together; only the atomic admission where the job is stored keeps the limit.
#[test]
fn racing_submissions_cannot_beat_the_per_client_job_limit() {
    let lone = LoneCoordinator::start(&["--max-jobs-per-client", "16", "--max-submissions-per-client", "64"]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, threaded());
    let answers = runtime.block_on(async {
        let client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let whole = || vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
        let (senders, answers): (Vec<_>, Vec<_>) = (0..24).map(|_| open_submission(&client, whole())).unzip();
        let port = coordinator.metrics_port;
        wait_until("24 open submissions", Duration::from_secs(30), || {
            gauge(port, "lorabeam_submission_bytes_in_flight") == (24 * GOOD.len()) as f64
        });
        drop(senders);
        let mut out = Vec::new();
        for answer in answers {
            out.push(answer.await.expect("task"));
        }
        out
    });
    let accepted = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(accepted, 16, "{answers:?}");
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(refused.code(), Code::ResourceExhausted, "{}", refused.message());
        assert!(refused.message().contains("already has 16 running job(s)"), "{}", refused.message());
    }
    assert_eq!(redis.cli(&["ZCARD", "lorabeam:jobs"]), "16", "only the admitted jobs are stored");
    assert_eq!(redis.cli(&["ZCARD", "lorabeam:client:127.0.0.1:jobs"]), "16");
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_limit_rejections_total{limit=\"running_jobs_per_client\"}"), 8.0);
}

/// Unfinished submissions hold at most the byte budget, a client at most its streams, and a
/// stream that goes quiet is refused after the idle timeout, freeing what it held. Each has its
/// own error and metric label, and none stores anything.
#[test]
fn unfinished_submissions_are_bounded_in_bytes_streams_and_time() {
    let flags = [
        "--max-submission-bytes-in-flight",
        "3000000",
        "--max-submissions-per-client",
        "3",
        "--submission-idle-secs",
        "2",
    ];
    let lone = LoneCoordinator::start(&flags);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, threaded());
    let port = coordinator.metrics_port;
    runtime.block_on(async {
        let client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let two_mb = vec![b' '; 2_000_000];
        let (_a, held) = open_submission(&client, vec![spec(small()), chunk(&two_mb)]);
        wait_until("2 MB in flight", Duration::from_secs(30), || {
            gauge(port, "lorabeam_submission_bytes_in_flight") == 2e6
        });
        let (_b, over) = open_submission(&client, vec![spec(small()), chunk(&two_mb)]);
        let status = over.await.expect("task").expect_err("over the budget");
        assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
        assert!(
            status.message().contains("budget of 3000000 (--max-submission-bytes-in-flight)"),
            "{}",
            status.message()
        );
        let (_c, quiet_c) = open_submission(&client, vec![spec(small())]);
        let (_d, quiet_d) = open_submission(&client, vec![spec(small())]);
        wait_until("3 open streams", Duration::from_secs(30), || gauge(port, "lorabeam_submissions_open") == 3.0);
        let (_e, capped) = open_submission(&client, vec![spec(small())]);
        let status = capped.await.expect("task").expect_err("over the stream cap");
        assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
        assert!(status.message().contains("3 SubmitJob stream(s) open"), "{}", status.message());
        for quiet in [held, quiet_c, quiet_d] {
            let status = quiet.await.expect("task").expect_err("idle");
            assert_eq!(status.code(), Code::DeadlineExceeded, "{}", status.message());
            assert!(status.message().contains("sent nothing for 2 s (--submission-idle-secs)"), "{}", status.message());
        }
        assert_eq!(gauge(port, "lorabeam_submission_bytes_in_flight"), 0.0, "the idle streams' bytes are freed");
        assert_eq!(gauge(port, "lorabeam_submissions_open"), 0.0);
        assert_eq!(redis.cli(&["KEYS", "lorabeam:job*"]), "", "nothing was stored");
        let mut client = client.clone();
        submit_good(&mut client).await;
    });
    let metrics = http_get(port, "/metrics");
    let limit = |name: &str| counter(&metrics, &format!("lorabeam_limit_rejections_total{{limit=\"{name}\"}}"));
    assert_eq!(limit("submission_bytes_in_flight"), 1.0, "{metrics}");
    assert_eq!(limit("submissions_per_client"), 1.0, "{metrics}");
    assert_eq!(limit("submission_idle"), 3.0, "{metrics}");
}

/// Calls of Redis commands the followers issue on every round (status and failures are
/// HGETALL, the done count SCARD); the maintenance loop uses neither.
fn follower_commands(redis: &Redis) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_hgetall:") || l.starts_with("cmdstat_scard:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// 20 WatchJob and 20 StreamResults on a job nobody serves read Redis while their clients
/// listen, and stop the moment the clients go away: over a quiet window longer than two of
/// their fallback refreshes, the coordinator then issues none of their commands.
#[test]
fn cancelled_watchers_stop_reading_redis() {
    const WINDOW: Duration = Duration::from_secs(5);
    let lone = LoneCoordinator::start(&[]);
    let (redis, coordinator, runtime) = (&lone.redis, &lone.coordinator, &lone.runtime);
    let (live, after) = runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let job = submit_good(&mut client).await;
        let mut watchers = Vec::new();
        let mut streams = Vec::new();
        for _ in 0..20 {
            let mut watch =
                client.watch_job(WatchJobRequest { job_id: job.clone() }).await.expect("watch").into_inner();
            watch.message().await.expect("first event").expect("an event");
            watchers.push(watch);
            let request = StreamResultsRequest { job_id: job.clone(), offset: 0 };
            streams.push(client.stream_results(request).await.expect("stream").into_inner());
        }
        let start = follower_commands(redis);
        tokio::time::sleep(WINDOW).await;
        let live = follower_commands(redis) - start;
        drop(watchers);
        drop(streams);
        // Let the resets reach the coordinator, then watch a quiet window.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = follower_commands(redis);
        tokio::time::sleep(WINDOW).await;
        (live, follower_commands(redis) - start)
    });
    eprintln!("follower commands in {WINDOW:?}: {live} with 40 followers, {after} after they left");
    assert!(live >= 40, "40 live followers each read the job at least once: {live}");
    assert!(after <= 3, "followers whose clients left keep reading Redis: {after} commands");
}
