//! The coordinator's errors, and their one mapping onto gRPC status codes.

use lorabeam_core::{DataError, ParamError, WriteError};
use lorabeam_storage::StorageError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt job state in redis for job {job_id}: {what}")]
    CorruptState { job_id: String, what: String },
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    #[error("invalid decoding parameters: {0}")]
    InvalidParams(#[from] ParamError),
    #[error("{0}")]
    InvalidData(#[from] DataError),
    #[error("limit: {detail}")]
    LimitExceeded { limit: &'static str, detail: String },
    #[error("no job {0}")]
    JobNotFound(String),
    /// A job for a model id no worker ever registered and `--serve-model-ids` does not declare:
    /// nothing would decode it. `known` lists the ids that are served.
    #[error("no worker serves model id {model_id}: no worker has registered it and this deployment does not declare it (--serve-model-ids); model ids served: {known}")]
    UnknownModel { model_id: String, known: String },
    /// An id not of the issued format (already quoted): never looked up.
    #[error("no job {0}: job ids are `job-` and 16 lowercase hex digits")]
    InvalidJobId(String),
    #[error("job {job_id} is {state}: {action} needs a running job")]
    JobNotRunning { job_id: String, state: String, action: &'static str },
    /// StreamResults of a job that ended short of some predictions, after every stored one.
    #[error(
        "job {job_id} is {state}: {missing} of its {records} records have no prediction (every stored one was sent)"
    )]
    JobEndedShort { job_id: String, state: String, missing: usize, records: usize },
    /// A ListJobs page_token this coordinator did not give (already quoted).
    #[error("page_token {0} is not one this coordinator gave")]
    BadPageToken(String),
    #[error("bad worker report: {0}")]
    BadWorkerReport(String),
    /// A report for a shard whose lease (queue entry) is not the reporting worker's.
    #[error("not this worker's lease: {0}")]
    NotLeaseHolder(String),
    /// A Report stream whose secret is not the one its consumer registered in Redis: it may
    /// not speak for that consumer.
    #[error("not this worker's consumer: {0}")]
    UnprovenConsumer(String),
    /// A SubmitJob stream that sent nothing for longer than the intake's idle timeout.
    #[error("submission idle: {0}")]
    SubmissionIdle(String),
    /// An idempotency key reused for other work (`key` already quoted).
    #[error("idempotency key {key} belongs to job {job_id}, submitted with other parameters: {differing}; resubmit with the same parameters to get that job, or use another key")]
    IdempotencyConflict { key: String, job_id: String, differing: String },
    #[error("incomplete submission: {0}")]
    TruncatedSubmission(String),
    #[error("the request stream failed: {0}")]
    Stream(Status),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Object storage: the job's data (JobSpec.data_url) or the output directory's store.
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("internal error: {0}")]
    Internal(String),
    /// SIGTERM: streams end so that their peers reconnect to the next coordinator.
    #[error("the coordinator is shutting down; reconnect to its successor")]
    ShuttingDown,
}

impl CoordinatorError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CoordinatorError::Redis(_) => "redis",
            CoordinatorError::CorruptState { .. } => "corrupt_state",
            CoordinatorError::InvalidSpec(_) => "invalid_spec",
            CoordinatorError::InvalidParams(_) => "invalid_params",
            CoordinatorError::InvalidData(_) => "invalid_data",
            CoordinatorError::LimitExceeded { .. } => "limit",
            CoordinatorError::JobNotFound(_) => "job_not_found",
            CoordinatorError::UnknownModel { .. } => "unknown_model",
            CoordinatorError::InvalidJobId(_) => "invalid_job_id",
            CoordinatorError::JobNotRunning { .. } => "job_not_running",
            CoordinatorError::JobEndedShort { .. } => "job_ended_short",
            CoordinatorError::BadPageToken(_) => "bad_page_token",
            CoordinatorError::BadWorkerReport(_) => "bad_worker_report",
            CoordinatorError::NotLeaseHolder(_) => "not_lease_holder",
            CoordinatorError::UnprovenConsumer(_) => "unproven_consumer",
            CoordinatorError::SubmissionIdle(_) => "submission_idle",
            CoordinatorError::TruncatedSubmission(_) => "truncated_submission",
            CoordinatorError::IdempotencyConflict { .. } => "idempotency_conflict",
            CoordinatorError::Stream(_) => "stream",
            CoordinatorError::Write(_) => "write",
            CoordinatorError::Storage(_) => "storage",
            CoordinatorError::Internal(_) => "internal",
            CoordinatorError::ShuttingDown => "shutting_down",
        }
    }
}

/// The one mapping of errors onto gRPC codes: pure, and exhaustive so that a new variant forces
/// a decision. Counting happens at the RPC boundary (`metrics::rpc_error`), not here.
impl From<CoordinatorError> for Status {
    fn from(err: CoordinatorError) -> Self {
        let code = match &err {
            CoordinatorError::Redis(_) | CoordinatorError::ShuttingDown => Code::Unavailable,
            CoordinatorError::CorruptState { .. } => Code::DataLoss,
            CoordinatorError::InvalidSpec(_)
            | CoordinatorError::InvalidParams(_)
            | CoordinatorError::InvalidData(_)
            | CoordinatorError::BadPageToken(_)
            | CoordinatorError::BadWorkerReport(_)
            | CoordinatorError::TruncatedSubmission(_) => Code::InvalidArgument,
            CoordinatorError::LimitExceeded { .. } => Code::ResourceExhausted,
            CoordinatorError::JobNotFound(_) | CoordinatorError::InvalidJobId(_) => Code::NotFound,
            CoordinatorError::JobNotRunning { .. }
            | CoordinatorError::JobEndedShort { .. }
            | CoordinatorError::UnknownModel { .. } => Code::FailedPrecondition,
            CoordinatorError::NotLeaseHolder(_) | CoordinatorError::UnprovenConsumer(_) => Code::PermissionDenied,
            CoordinatorError::SubmissionIdle(_) => Code::DeadlineExceeded,
            CoordinatorError::IdempotencyConflict { .. } => Code::AlreadyExists,
            CoordinatorError::Stream(status) => return status.clone(),
            CoordinatorError::Write(_) | CoordinatorError::Internal(_) => Code::Internal,
            CoordinatorError::Storage(e) => storage_code(e),
        };
        Status::new(code, err.to_string())
    }
}

pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

/// An object the coordinator could not use: the client named a missing object (NOT_FOUND) or
/// one this coordinator may not read (PERMISSION_DENIED: its credentials, not the client's
/// token), an object too large, one that changed while read (ABORTED: try again), or a store
/// that did not answer.
fn storage_code(error: &StorageError) -> Code {
    match error {
        StorageError::BadUrl { .. } => Code::InvalidArgument,
        StorageError::NotFound { .. } => Code::NotFound,
        StorageError::Denied { .. } => Code::PermissionDenied,
        StorageError::Changed { .. } => Code::Aborted,
        StorageError::TooLarge { .. } => Code::ResourceExhausted,
        StorageError::Store { .. } => Code::Unavailable,
        StorageError::Local { .. } => Code::Internal,
    }
}

/// tonic's refusal of a message over `--max-message-bytes` (OUT_OF_RANGE), as the limit it is.
pub fn oversize(status: &Status) -> Option<CoordinatorError> {
    let too_large = status.code() == Code::OutOfRange && status.message().contains("message length too large");
    too_large.then(|| CoordinatorError::LimitExceeded {
        limit: "message_bytes",
        detail: format!(
            "a gRPC message is over this coordinator's limit (--max-message-bytes): {}",
            status.message().trim_start_matches("Error, ")
        ),
    })
}

/// An error read from a request stream: an oversize message is a limit, anything else (an
/// undecodable frame, a reset) the stream's own status.
pub fn stream_error(status: Status) -> CoordinatorError {
    oversize(&status).unwrap_or(CoordinatorError::Stream(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_are_invalid_argument_and_outages_unavailable() {
        let status = Status::from(CoordinatorError::InvalidParams(ParamError::BeamZero(0)));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("--beam must be at least 1"));
        assert_eq!(Status::from(CoordinatorError::JobNotFound("j1".into())).code(), Code::NotFound);
        let redis = redis::RedisError::from((redis::ErrorKind::Io, "connection refused"));
        assert_eq!(Status::from(CoordinatorError::Redis(redis)).code(), Code::Unavailable);
        let bad = CoordinatorError::BadWorkerReport("job j has no item 9".into());
        assert_eq!(Status::from(bad).code(), Code::InvalidArgument);
    }

    #[test]
    fn oversize_messages_are_a_limit_and_other_stream_errors_stay_as_they_are() {
        let tonic_says =
            Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes");
        let err = stream_error(tonic_says);
        assert!(matches!(err, CoordinatorError::LimitExceeded { limit: "message_bytes", .. }), "{err}");
        let status = Status::from(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("decoded message length too large: found 9 bytes"), "{}", status.message());
        let reset = stream_error(Status::internal("failed to decode Protobuf message"));
        assert_eq!(Status::from(reset).code(), Code::Internal);
        assert!(oversize(&Status::out_of_range("offset past the end")).is_none());
    }
}
