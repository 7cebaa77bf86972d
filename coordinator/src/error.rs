//! The coordinator's errors, and their one mapping onto gRPC status codes.

use lorabeam_proto::ParamError;
use tonic::{Code, Status};

use crate::validation::DataError;
use crate::writer::WriteError;

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
    #[error("job {job_id} is {state}: {action} needs a running job")]
    JobNotRunning { job_id: String, state: String, action: &'static str },
    #[error("the request stream failed: {0}")]
    Stream(Status),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("internal error: {0}")]
    Internal(String),
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
            CoordinatorError::JobNotRunning { .. } => "job_not_running",
            CoordinatorError::Stream(_) => "stream",
            CoordinatorError::Write(_) => "write",
            CoordinatorError::Internal(_) => "internal",
        }
    }
}

/// Every error a caller sees passes here, so this is also where errors are counted.
impl From<CoordinatorError> for Status {
    fn from(err: CoordinatorError) -> Self {
        crate::metrics::METRICS.errors.with_label_values(&[err.kind()]).inc();
        if let CoordinatorError::LimitExceeded { limit, .. } = &err {
            crate::metrics::METRICS.limit_rejections.with_label_values(&[limit]).inc();
        }
        if let CoordinatorError::InvalidData(crate::validation::DataError::BadLines { errors, .. }) = &err {
            for e in errors {
                let limit = match e.fault {
                    crate::validation::LineFault::LineTooLong { .. } => "line_bytes",
                    crate::validation::LineFault::ContextTooLong { .. } => "context_tokens",
                    _ => continue,
                };
                crate::metrics::METRICS.limit_rejections.with_label_values(&[limit]).inc();
            }
        }
        let code = match &err {
            CoordinatorError::Redis(_) => Code::Unavailable,
            CoordinatorError::CorruptState { .. } => Code::DataLoss,
            CoordinatorError::InvalidSpec(_)
            | CoordinatorError::InvalidParams(_)
            | CoordinatorError::InvalidData(_) => Code::InvalidArgument,
            CoordinatorError::LimitExceeded { .. } => Code::ResourceExhausted,
            CoordinatorError::JobNotFound(_) => Code::NotFound,
            CoordinatorError::JobNotRunning { .. } => Code::FailedPrecondition,
            CoordinatorError::Stream(status) => return status.clone(),
            CoordinatorError::Write(_) | CoordinatorError::Internal(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

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
    }
}
