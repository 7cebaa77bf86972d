//! Why a worker stops.

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Connect(#[from] lorabeam_proto::connect::ConnectError),
    #[error("coordinator refused the report stream: {0}")]
    Refused(#[from] tonic::Status),
    #[error("cannot start the engine thread: {0}")]
    EngineThread(std::io::Error),
    #[error("the engine thread stopped unexpectedly")]
    EngineStopped,
}
