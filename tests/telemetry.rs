//! Traces and metrics from real processes: an in-process OTLP receiver collects the spans of a
//! coordinator and a worker running a small job, and `/metrics` is scraped from both.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lorabeam_proto::v1::{self, JobServiceClient, JobSpec, JobState};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::cluster::{http_get, wait_until, worker_metrics_port, worker_with_env, Coordinator, Redis};
use support::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// One received span: its ids, name and the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    service: String,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in request.into_inner().resource_spans {
            let attributes = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name,
                    service: service.clone(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

#[test]
fn one_trace_per_job_across_coordinator_and_worker() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = Receiver::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    let service = TraceServiceServer::new(receiver.clone());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "200")];

    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let mut coordinator = Coordinator::start_with_env(&redis, dir.path(), None, &[], &env);
    let mut worker = worker_with_env(&redis, &coordinator.url(), dir.path(), "a", "tiny", &[], &env);

    // The client's own trace: the job must join it.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 6, dir.path(), "six.jsonl");
    let jsonl = std::fs::read(&data).expect("data");
    let job_id = runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let params = lorabeam_core::DecodeParams { beam: 2, eval_len: 8, seq_len: 64, ..Default::default() };
        let spec = JobSpec {
            model_id: "tiny".into(),
            params: Some(v1::DecodeParams::try_from(&params).expect("fits")),
            shard_size: 2,
            ..Default::default()
        };
        let messages = lorabeam_proto::submission::submission_messages(spec, &jsonl, 1 << 20);
        let mut request = tonic::Request::new(tokio_stream::iter(messages));
        let traceparent = format!("00-{trace_id}-{client_span}-01");
        request.metadata_mut().insert("traceparent", traceparent.parse().expect("ascii"));
        client.submit_job(request).await.expect("submit").into_inner().job_id
    });
    wait_until("the job to complete", Duration::from_secs(120), || {
        runtime.block_on(async {
            let mut client = JobServiceClient::connect(coordinator.url()).await.ok()?;
            let request = v1::GetJobRequest { job_id: job_id.clone() };
            Some(client.get_job(request).await.ok()?.into_inner().state == JobState::Completed as i32)
        }) == Some(true)
    });
    // A clean stop flushes what the batch exporters still hold.
    assert!(worker.terminate(Duration::from_secs(30)), "worker stops cleanly:\n{}", worker.stderr());
    assert!(coordinator.terminate(Duration::from_secs(30)), "coordinator stops cleanly:\n{}", coordinator.stderr());

    let spans = receiver.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
    assert!(count("decode_batch") >= 1 && count("complete_job") == 1);
    let worker_spans = job.iter().filter(|s| s.service == "lorabeam-worker").count();
    assert!(worker_spans >= 10, "worker spans are in the job's trace ({worker_spans})");
}

#[test]
fn metrics_are_scraped_from_both_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let _worker = worker_with_env(&redis, &coordinator.url(), dir.path(), "a", "tiny", &[], &[]);
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
