//! Traces and metrics from real processes, read as a backend reads them: an in-process OTLP
//! receiver collects the spans of a coordinator and a worker running two jobs at once, and
//! `/metrics` is scraped from both.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use lorabeam_proto::v1::{self, JobServiceClient, JobSpec, JobState};
use support::cluster::{http_get, wait_until, worker_metrics_port, worker_with_env, Coordinator, Redis};
use support::otlp::{Received, Receiver, KIND_CONSUMER, KIND_INTERNAL, KIND_PRODUCER, KIND_SERVER, STATUS_ERROR};
use support::*;

/// Attributes that are counts: a backend must get them as integers.
const COUNTS: [&str; 7] = ["rows", "steps", "tokens", "items", "records", "shards", "results"];

/// Prints the tree under `root`, returning the names seen.
fn print_tree(spans: &[Received], root: &Received, depth: usize, out: &mut Vec<String>) {
    let line = format!("{}{} [{}] {}", "  ".repeat(depth), root.name, root.service, root.span_id);
    eprintln!("{line}");
    out.push(root.name.clone());
    let mut children: Vec<&Received> = spans.iter().filter(|s| s.parent == root.span_id).collect();
    children.sort_by(|a, b| a.name.cmp(&b.name));
    for child in children {
        print_tree(spans, child, depth + 1, out);
    }
}

/// Submits the first `lines` lines of the public test set, continuing `traceparent` if given.
async fn submit(
    url: &str,
    data: &std::path::Path,
    beam: usize,
    traceparent: Option<&str>,
) -> Result<v1::SubmitJobResponse, tonic::Status> {
    let mut client = JobServiceClient::connect(url.to_string()).await.expect("connect");
    let params = lorabeam_core::DecodeParams { beam, eval_len: 8, seq_len: 64, ..Default::default() };
    let spec = JobSpec {
        model_id: "tiny".into(),
        params: Some(v1::DecodeParams::try_from(&params).expect("fits")),
        shard_size: 2,
        ..Default::default()
    };
    let jsonl = std::fs::read(data).expect("data");
    let messages = lorabeam_proto::submission::submission_messages(spec, &jsonl, 1 << 20);
    let mut request = tonic::Request::new(tokio_stream::iter(messages));
    if let Some(tp) = traceparent {
        request.metadata_mut().insert("traceparent", tp.parse().expect("ascii"));
    }
    client.submit_job(request).await.map(|r| r.into_inner())
}

fn completed(runtime: &tokio::runtime::Runtime, url: &str, job_id: &str) -> bool {
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.to_string()).await.ok()?;
        let request = v1::GetJobRequest { job_id: job_id.to_string() };
        Some(client.get_job(request).await.ok()?.into_inner().state == JobState::Completed as i32)
    }) == Some(true)
}

/// A job's trace shows its own decoding: `decode_share` spans under its shards' runs, whose
/// items add up to the job's, each linked to an exported `decode_batch` that links back to
/// the shard; and one `job` span, under SubmitJob, covering all of it.
fn assert_own_decoding(spans: &[Received], trace: &str, job: &v1::SubmitJobResponse) {
    let in_trace: Vec<&Received> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let shares: Vec<&&Received> = in_trace.iter().filter(|s| s.name == "decode_share").collect();
    assert!(!shares.is_empty(), "job {}: its trace holds no decode spans", job.job_id);
    let items: i64 = shares.iter().map(|s| s.int("items").expect("items, an integer")).sum();
    assert_eq!(items, job.distinct_items as i64, "job {}: its shares cover its items", job.job_id);
    for share in &shares {
        let run = by_id.get(share.parent.as_str()).expect("the share's parent was exported");
        assert_eq!(run.name, "run_shard");
        assert_eq!(run.str("job_id"), Some(job.job_id.as_str()));
        let batches: Vec<&&Received> = share
            .links
            .iter()
            .filter_map(|(_, span)| by_id.get(span.as_str()))
            .filter(|s| s.name == "decode_batch")
            .collect();
        assert_eq!(batches.len(), 1, "a share links to its batch: {share:#?}");
        let back = (run.trace_id.clone(), run.span_id.clone());
        assert!(batches[0].links.contains(&back), "the batch links to every shard it served");
    }
    let submit = in_trace.iter().find(|s| s.name == "SubmitJob").expect("SubmitJob");
    let jobs: Vec<&&Received> = in_trace.iter().filter(|s| s.name == "job").collect();
    assert_eq!(jobs.len(), 1, "one job span");
    let span = jobs[0];
    assert_eq!(span.parent, submit.span_id, "the job span hangs under SubmitJob");
    assert_eq!(span.str("state"), Some("completed"));
    assert_eq!(span.int("records"), Some(job.records as i64));
    assert!(span.int("tokens").is_some_and(|t| t > 0), "{span:#?}");
    // Causal order, not timing: the job was created before its shards ran and completed after.
    for share in &shares {
        assert!(span.start_ns <= share.start_ns && span.end_ns >= share.end_ns, "the job span covers its decoding");
    }
}

#[test]
fn one_trace_per_job_across_coordinator_and_worker() {
    let _one_fleet = support::one_fleet_at_a_time();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = Receiver::default();
    let otlp = receiver.serve(&runtime);
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];

    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let mut coordinator = Coordinator::start_with_env(&redis, dir.path(), None, &[], &env);
    let mut worker = worker_with_env(&redis, &coordinator.url(), dir.path(), "a", "tiny", &[], &env);
    // Its heartbeat is in Redis, as the coordinator counts live workers.
    wait_until("the worker to register", Duration::from_secs(60), || {
        http_get(coordinator.metrics_port, "/metrics").contains("lorabeam_workers{model_id=\"tiny\"} 1")
    });

    // Two jobs at once, so batches mix them. The first continues the client's own trace.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let six = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 6, dir.path(), "six.jsonl");
    let twenty = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 20, dir.path(), "twenty.jsonl");
    let (first, second) = runtime.block_on(async {
        let url = coordinator.url();
        tokio::join!(submit(&url, &six, 2, Some(&traceparent)), submit(&url, &twenty, 2, None))
    });
    let (first, second) = (first.expect("first job"), second.expect("second job"));
    for job in [&first, &second] {
        wait_until("the jobs to complete", Duration::from_secs(120), || {
            completed(&runtime, &coordinator.url(), &job.job_id)
        });
    }
    // A clean stop flushes what the batch exporters still hold.
    assert!(worker.terminate(Duration::from_secs(30)), "worker stops cleanly:\n{}", worker.stderr());
    assert!(coordinator.terminate(Duration::from_secs(30)), "coordinator stops cleanly:\n{}", coordinator.stderr());

    let spans = receiver.spans();
    let job: Vec<Received> = spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect();
    let root = job.iter().find(|s| s.name == "SubmitJob").expect("a SubmitJob span in the client's trace");
    assert_eq!(root.parent, client_span, "SubmitJob continues the client's span");
    eprintln!("trace {trace_id} ({} spans):", job.len());
    let mut names = Vec::new();
    print_tree(&job, root, 0, &mut names);
    let ids: Vec<&str> = job.iter().map(|s| s.span_id.as_str()).collect();
    let orphans: Vec<&Received> =
        job.iter().filter(|s| s.name != "SubmitJob" && !ids.contains(&s.parent.as_str())).collect();
    assert!(orphans.is_empty(), "spans whose parent was never exported: {orphans:#?}");
    assert_eq!(names.len(), job.len(), "every span of the trace hangs under SubmitJob");
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count("enqueue_shard"), 3, "6 lines in shards of 2 distinct contexts");
    for name in ["claim_shard", "run_shard", "confirm_shard", "ack_shard", "store_results"] {
        assert!(count(name) >= 3, "{name}: {}", count(name));
    }
    assert!(count("complete_job") == 1 && count("job") == 1);
    let worker_spans = job.iter().filter(|s| s.service == "lorabeam-worker").count();
    assert!(worker_spans >= 10, "worker spans are in the job's trace ({worker_spans})");

    // Each job's trace shows its own decoding, whichever job opened the batch.
    let second_trace = spans
        .iter()
        .find(|s| s.name == "SubmitJob" && s.str("job_id") == Some(second.job_id.as_str()))
        .map(|s| s.trace_id.clone())
        .expect("the second job's SubmitJob");
    assert_own_decoding(&spans, trace_id, &first);
    assert_own_decoding(&spans, &second_trace, &second);
    let mixed = spans.iter().filter(|s| s.name == "decode_batch" && s.int("shards").is_some_and(|n| n > 1)).count();
    let shared = spans.iter().filter(|s| {
        s.name == "decode_batch" && {
            let traces: std::collections::HashSet<&str> = s.links.iter().map(|(t, _)| t.as_str()).collect();
            traces.len() > 1
        }
    });
    eprintln!("{mixed} batch(es) served several shards; {} served both jobs", shared.count());

    // Kinds as OpenTelemetry's conventions say.
    let kind_of = |name: &str| job.iter().find(|s| s.name == name).map(|s| s.kind);
    assert_eq!(kind_of("SubmitJob"), Some(KIND_SERVER));
    assert_eq!(kind_of("enqueue_shard"), Some(KIND_PRODUCER));
    assert_eq!(kind_of("claim_shard"), Some(KIND_CONSUMER));
    assert_eq!(kind_of("run_shard"), Some(KIND_INTERNAL));
    let get_job = spans.iter().find(|s| s.name == "GetJob").expect("GetJob spans");
    assert_eq!((get_job.kind, get_job.str("rpc.system")), (KIND_SERVER, Some("grpc")));
    assert_eq!(get_job.int("rpc.grpc.status_code"), Some(0));

    // Counts are integers wherever they appear, and they appear where a backend queries them.
    for span in &spans {
        for key in COUNTS {
            if let Some(value) = span.attributes.get(key) {
                assert!(span.int(key).is_some(), "{}.{key} is not an integer: {value:?}", span.name);
            }
        }
    }
    assert_eq!((root.int("records"), root.int("shards")), (Some(6), Some(first.shards as i64)));
    let batch = spans.iter().find(|s| s.name == "decode_batch").expect("a decode_batch");
    for key in ["rows", "steps", "tokens", "items", "shards"] {
        assert!(batch.int(key).is_some_and(|n| n > 0), "decode_batch.{key}: {batch:#?}");
    }
    let has_int = |name: &str, key: &str| spans.iter().any(|s| s.name == name && s.int(key).is_some());
    for (name, key) in [("enqueue_shard", "items"), ("claim_shard", "items"), ("store_results", "results")] {
        assert!(has_int(name, key), "{name}.{key}");
    }
}

#[test]
fn refused_and_failed_calls_mark_their_spans_error() {
    let _one_fleet = support::one_fleet_at_a_time();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = Receiver::default();
    let otlp = receiver.serve(&runtime);
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let mut coordinator = Coordinator::start_with_env(&redis, dir.path(), None, &[], &env);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, dir.path(), "four.jsonl");
    let url = coordinator.url();
    let refused = runtime.block_on(submit(&url, &data, 100, None)).expect_err("--beam 100 is over the limit");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    let missing = runtime.block_on(async {
        let mut client = JobServiceClient::connect(url.clone()).await.expect("connect");
        client.get_job(v1::GetJobRequest { job_id: "job-0000000000000000".into() }).await
    });
    assert_eq!(missing.expect_err("no such job").code(), tonic::Code::NotFound);
    assert!(coordinator.terminate(Duration::from_secs(30)), "coordinator stops cleanly:\n{}", coordinator.stderr());

    let spans = receiver.spans();
    let submit = spans.iter().find(|s| s.name == "SubmitJob").expect("the refused SubmitJob's span");
    assert_eq!(submit.status_code, STATUS_ERROR, "{submit:#?}");
    assert!(submit.status_message.contains("--beam 100 is over this coordinator's limit of 64"), "{submit:#?}");
    assert_eq!(submit.int("rpc.grpc.status_code"), Some(i32::from(tonic::Code::ResourceExhausted) as i64));
    let get = spans.iter().find(|s| s.name == "GetJob").expect("the failed GetJob's span");
    assert_eq!(get.status_code, STATUS_ERROR, "{get:#?}");
    assert!(get.status_message.contains("no job job-0000000000000000"), "{get:#?}");
    assert_eq!(get.int("rpc.grpc.status_code"), Some(i32::from(tonic::Code::NotFound) as i64));
}

#[test]
fn metrics_are_scraped_from_both_processes() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let _worker = worker_with_env(&redis, &coordinator.url(), dir.path(), "a", "tiny", &[], &[]);
    // Before any error, every known kind and limit has its series at 0, with HELP and TYPE.
    let text = http_get(coordinator.metrics_port, "/metrics");
    let values = parse(&text);
    for family in ["lorabeam_errors_total", "lorabeam_limit_rejections_total"] {
        assert!(text.contains(&format!("# TYPE {family} counter")) && text.contains(&format!("# HELP {family} ")));
    }
    for series in [
        "lorabeam_errors_total{kind=\"job_not_found\"}",
        "lorabeam_errors_total{kind=\"limit\"}",
        "lorabeam_errors_total{kind=\"redis\"}",
        "lorabeam_limit_rejections_total{limit=\"beam\"}",
        "lorabeam_limit_rejections_total{limit=\"job_bytes\"}",
        "lorabeam_limit_rejections_total{limit=\"running_jobs_per_client\"}",
    ] {
        assert_eq!(values.get(series), Some(&0.0), "{series} starts at 0:\n{text}");
    }
    let text = http_get(worker_metrics_port(dir.path(), "a"), "/metrics");
    assert!(text.contains("# TYPE lorabeam_worker_errors_total counter"), "{text}");
    for kind in ["redis", "coordinator_link", "engine"] {
        let series = format!("lorabeam_worker_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(parse(&text).get(&series), Some(&0.0), "{series} starts at 0:\n{text}");
    }
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 8, dir.path(), "eight.jsonl");
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(strings(&["--beam", "2", "--eval_len", "8", "--seq_len", "64", "--shard-size", "3", "--wait"]));
    let out = lorabeam(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = lorabeam(&strings(&["watch", "job-0000000000000000", "--coordinator", &coordinator.url()]));
    assert!(!missing.status.success());

    let text = http_get(coordinator.metrics_port, "/metrics");
    eprintln!("coordinator /metrics:\n{text}");
    let values = parse(&text);
    assert_eq!(values.get("lorabeam_jobs_submitted_total"), Some(&1.0));
    assert_eq!(values.get("lorabeam_records_done_total"), Some(&8.0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shards = number_before(&stderr, " shards");
    assert_eq!(values.get("lorabeam_shards_done_total"), Some(&shards));
    assert_eq!(values.get("lorabeam_queue_depth{model_id=\"tiny\"}"), Some(&0.0));
    assert_eq!(values.get("lorabeam_queue_lag{model_id=\"tiny\"}"), Some(&0.0));
    assert_eq!(values.get("lorabeam_jobs{state=\"completed\"}"), Some(&1.0));
    assert_eq!(values.get("lorabeam_in_flight{unit=\"records\"}"), Some(&0.0));
    assert_eq!(values.get("lorabeam_errors_total{kind=\"job_not_found\"}"), Some(&1.0));
    assert!(values.get("lorabeam_generated_tokens_total").is_some_and(|&t| t > 0.0));
    assert_eq!(values.get("lorabeam_redis_up"), Some(&1.0));
    assert!(values.contains_key("lorabeam_scoring_seconds_count"), "{text}");

    let text = http_get(worker_metrics_port(dir.path(), "a"), "/metrics");
    eprintln!("worker /metrics:\n{text}");
    let values = parse(&text);
    let distinct = number_before(&stderr, " distinct contexts");
    assert_eq!(values.get("lorabeam_worker_items_done_total"), Some(&distinct), "one per distinct context");
    assert_eq!(values.get("lorabeam_worker_shards_done_total"), Some(&shards));
    assert!(values.get("lorabeam_worker_decode_step_seconds_count").is_some_and(|&n| n > 0.0));
    assert!(values.get("lorabeam_worker_generated_tokens_total").is_some_and(|&t| t > 0.0));
    assert_eq!(http_get(coordinator.metrics_port, "/healthz").trim(), "ok");
}

/// The number just before `words` in submit's summary ("... 6 distinct contexts, 2 shards").
fn number_before(text: &str, words: &str) -> f64 {
    let number = text.split(words).next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok());
    number.unwrap_or_else(|| panic!("no number before `{words}` in: {text}"))
}

/// `name{labels} value` lines of the Prometheus text format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}
