//! The coordinator's spans beyond one line: gRPC handler spans (kind SERVER, continuing the
//! caller's trace, status ERROR with the reason when a call is refused or fails) and the `job`
//! span, a job's whole life from submit to its end, recorded when it ends.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use lorabeam_proto::queue::job_fields as f;
use lorabeam_proto::telemetry::{int, parent_from_metadata, record_finished_span, set_error, FinishedSpan, KeyValue};
use tonic::{Request, Status};
use tracing::{field::Empty, info_span, Span};

use crate::error::Result;
use crate::metrics::rpc_error;

const SERVICE: &str = "lorabeam.v1.JobService";

/// The span of one JobService call, continuing the trace the caller sent.
pub fn rpc_span<T>(method: &'static str, request: &Request<T>) -> Span {
    let span = info_span!(
        "rpc",
        otel.name = method,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = SERVICE,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
    );
    parent_from_metadata(&span, request.metadata());
    span
}

/// The span of a SubmitJob call, with what it queued.
pub fn submit_span<T>(request: &Request<T>) -> Span {
    let span = info_span!(
        "SubmitJob",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = SERVICE,
        rpc.method = "SubmitJob",
        rpc.grpc.status_code = Empty,
        job_id = Empty,
        records = Empty,
        shards = Empty,
    );
    parent_from_metadata(&span, request.metadata());
    span
}

/// Where a call's result leaves the service: an error is counted and mapped onto its status
/// (`metrics::rpc_error`) and marks `span` ERROR with the status's message.
pub fn rpc_result<T>(span: &Span, result: Result<T>) -> std::result::Result<T, Status> {
    match result {
        Ok(value) => {
            span.record("rpc.grpc.status_code", 0i64);
            Ok(value)
        }
        Err(err) => {
            let status = rpc_error(err);
            span.record("rpc.grpc.status_code", i64::from(i32::from(status.code())));
            set_error(span, status.message());
            Err(status)
        }
    }
}

/// Records the `job` span of a job that has ended: from its creation until now, a child of
/// its SubmitJob span, so a backend shows how long the job took. Built from the job's hash,
/// so a coordinator restarted since the submit records it all the same.
pub fn record_job_span(job_id: &str, hash: &HashMap<String, String>) {
    let number = |field: &str| hash.get(field).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let text = |field: &str| hash.get(field).cloned().unwrap_or_default();
    let state = text(f::STATE);
    let error = hash.get(f::ERROR).filter(|e| !e.is_empty()).cloned();
    let failed = state == lorabeam_proto::queue::job_states::FAILED;
    record_finished_span(FinishedSpan {
        name: "job",
        traceparent: text(f::TRACEPARENT),
        start: UNIX_EPOCH + Duration::from_millis(number(f::CREATED_MS)),
        attributes: vec![
            KeyValue::new("job_id", job_id.to_string()),
            KeyValue::new("state", state),
            KeyValue::new("records", int(number(f::RECORDS))),
            KeyValue::new("items", int(number(f::ITEMS))),
            KeyValue::new("shards", int(number(f::SHARDS))),
            KeyValue::new("tokens", int(number(f::GENERATED_TOKENS))),
        ],
        // A job with some failed items still completed; one with nothing to show failed.
        error: if failed { Some(error.unwrap_or_else(|| "the job failed".into())) } else { None },
    });
}
