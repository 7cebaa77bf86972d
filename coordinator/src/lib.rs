//! lorabeam's coordinator: job intake, the Redis shard queue, result intake and ordered output.
//! What a job *is* (records, dedup, the reference's batching, the predictions format) lives in
//! `lorabeam_core`; this crate serves it.
//!
//! - [`intake`] reads a SubmitJob stream, checks it and plans it with the core's rules;
//! - [`sharding`] cuts the plan into queue messages;
//! - [`server`] runs the gRPC services over the job state kept in Redis ([`store`], [`results`]);
//! - `finalizer` writes a complete job's output once, off the result path, and [`scoring`]
//!   scores a job submitted with `score`;
//! - [`fleet`] knows the model ids served and the live workers (their heartbeats); `stall`
//!   says why a running job is not moving;
//! - [`job_id`] is the one check of ids from clients and workers; `leases` checks each
//!   worker report against the shard it holds;
//! - [`error`] maps every failure onto one gRPC status; [`metrics`] counts them at the RPC edge;
//!   `traces` builds the spans that need more than a line (handlers, the `job` span).

mod admission;
pub mod auth;
pub mod error;
mod events;
mod finalizer;
pub mod fleet;
pub mod idempotency;
pub mod intake;
pub mod job_id;
mod job_service;
mod leases;
pub mod metrics;
pub mod object_data;
pub mod output_store;
mod oversize;
mod progress_watch;
pub mod results;
pub mod scoring;
pub mod server;
pub mod sharding;
pub mod shutdown;
mod stall;
pub mod store;
pub mod task_scoring;
mod traces;
mod worker_service;

pub use error::CoordinatorError;
pub use server::{Coordinator, CoordinatorConfig, ServeOptions, ServerTls};
