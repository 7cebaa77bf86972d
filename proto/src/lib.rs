//! lorabeam's contract: what every component agrees on.
//!
//! - [`v1`]: the gRPC API, package `lorabeam.v1` (`JobService` for clients, `WorkerService`
//!   for workers), generated from `proto/lorabeam/v1/lorabeam.proto`;
//! - [`queue`]: the Redis key layout, stream fields and shard message, and [`queue_scripts`],
//!   its Lua scripts;
//! - the wire form of [`lorabeam_core::DecodeParams`] (the core owns their rules), converted
//!   with checks both ways;
//! - [`telemetry`] and [`metrics_http`]: the logging, tracing and metrics entry points every
//!   binary shares, and the W3C trace context every call and shard carries;
//! - [`cli_flags`]: how every binary reads its flags (both spellings, last value wins);
//! - [`heartbeat`]: the workers' heartbeats in Redis, which the coordinator lists;
//! - [`adapter_marks`]: what a model's workers tell each other about the adapters they load.

pub mod adapter_marks;
pub mod cli_flags;
pub mod connect;
pub mod error_text;
pub mod heartbeat;
pub mod job_state;
pub mod metrics_http;
pub mod queue;
pub mod queue_scripts;
pub mod submission;
pub mod telemetry;

use lorabeam_core::{DecodeParams, ParamError};

/// Generated code stays private; `v1` re-exports what the other crates use.
#[allow(clippy::all, clippy::unwrap_used)]
mod pb {
    tonic::include_proto!("lorabeam.v1");
}

/// The `lorabeam.v1` gRPC API.
pub mod v1 {
    pub use crate::pb::job_service_client::JobServiceClient;
    pub use crate::pb::job_service_server::{JobService, JobServiceServer};
    pub use crate::pb::submit_job_request::Item as SubmitItem;
    pub use crate::pb::worker_report::Report;
    pub use crate::pb::worker_service_client::WorkerServiceClient;
    pub use crate::pb::worker_service_server::{WorkerService, WorkerServiceServer};
    pub use crate::pb::{
        CancelJobRequest, DataEnd, DecodeParams, GetJobRequest, ItemFailed, ItemResult, JobEvent, JobSpec, JobState,
        JobStatus, ListJobsRequest, ListJobsResponse, ListWorkersRequest, ListWorkersResponse, Prediction, RecordChunk,
        Scores, ShardConfirmed, ShardFinished, StreamResultsRequest, SubmitJobRequest, SubmitJobResponse,
        WatchJobRequest, WorkerInfo, WorkerReport,
    };

    /// The encoded `FileDescriptorSet` of `lorabeam.v1`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lorabeam_v1_descriptor.bin"));
}

/// A job state as the CLI, logs and errors name it: `completed_with_failures` for
/// `JOB_STATE_COMPLETED_WITH_FAILURES` (the names the Redis job hash stores).
pub fn job_state_name(state: i32) -> String {
    v1::JobState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("JOB_STATE_").to_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether a job in this state will change no more.
pub fn job_state_is_final(state: i32) -> bool {
    !matches!(
        v1::JobState::try_from(state),
        Ok(v1::JobState::Queued)
            | Ok(v1::JobState::Running)
            | Ok(v1::JobState::Finalizing)
            | Ok(v1::JobState::Unspecified)
            | Err(_)
    )
}

/// Resolves on SIGTERM or Ctrl-C: how every lorabeam process learns it should stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A count as the wire carries it (`uint32`): refused, never truncated, when it does not fit.
fn wire_count(name: &'static str, value: usize) -> Result<u32, ParamError> {
    u32::try_from(value).map_err(|_| ParamError::TooLargeForWire { name, value, max: u32::MAX })
}

impl TryFrom<&DecodeParams> for v1::DecodeParams {
    type Error = ParamError;

    fn try_from(p: &DecodeParams) -> Result<Self, ParamError> {
        Ok(Self {
            beam: wire_count("beam", p.beam)?,
            eval_len: wire_count("eval_len", p.eval_len)?,
            seq_len: wire_count("seq_len", p.seq_len)?,
            min_length: wire_count("min_length", p.min_length)?,
            length_penalty: p.length_penalty,
            no_repeat_ngram_size: wire_count("no_repeat_ngram_size", p.no_repeat_ngram_size)?,
            repetition_penalty: p.repetition_penalty,
            extra_eos_token_ids: p.extra_eos_token_ids.clone(),
        })
    }
}

/// `u32` always fits `usize` on the 64-bit targets lorabeam builds for.
impl From<&v1::DecodeParams> for DecodeParams {
    fn from(p: &v1::DecodeParams) -> Self {
        Self {
            beam: p.beam as usize,
            eval_len: p.eval_len as usize,
            seq_len: p.seq_len as usize,
            min_length: p.min_length as usize,
            length_penalty: p.length_penalty,
            no_repeat_ngram_size: p.no_repeat_ngram_size as usize,
            repetition_penalty: p.repetition_penalty,
            extra_eos_token_ids: p.extra_eos_token_ids.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn decode_params_survive_the_wire() {
        let params =
            DecodeParams { beam: 10, extra_eos_token_ids: vec![628], length_penalty: 0.8, ..Default::default() };
        let wire = v1::DecodeParams::try_from(&params).expect("fits").encode_to_vec();
        let back = v1::DecodeParams::decode(wire.as_slice()).expect("decodes");
        assert_eq!(DecodeParams::from(&back), params);
    }

    #[test]
    fn counts_past_the_wire_are_refused_not_truncated() {
        let params = DecodeParams { eval_len: 1 << 32, ..Default::default() };
        let err = v1::DecodeParams::try_from(&params).expect_err("2^32 does not fit uint32");
        assert_eq!(err, ParamError::TooLargeForWire { name: "eval_len", value: 1 << 32, max: u32::MAX });
    }

    /// The descriptor set is protobuf; service and package names appear in it as plain bytes.
    #[test]
    fn descriptor_set_names_both_services() {
        let set = String::from_utf8_lossy(v1::FILE_DESCRIPTOR_SET);
        assert!(set.contains("JobService") && set.contains("WorkerService") && set.contains("lorabeam.v1"));
    }
}
