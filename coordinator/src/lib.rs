//! lorabeam's coordinator: job intake, the Redis shard queue, result intake and ordered output.
//!
//! - [`validation`] turns a test JSONL into checked records, or a list of per-line errors;
//! - [`plan`] (with [`dedup`] and [`reference_batching`]) turns records into distinct items;
//! - [`writer`] writes the ordered predictions JSONL atomically;
//! - [`server`] runs the gRPC services over the job state kept in Redis ([`store`], [`results`]).

pub mod auth;
pub mod dedup;
pub mod error;
mod events;
pub mod intake;
mod job_service;
pub mod metrics;
pub mod plan;
pub mod reference_batching;
pub mod results;
pub mod server;
pub mod store;
pub mod validation;
mod worker_service;
pub mod writer;

pub use error::CoordinatorError;
pub use server::{Coordinator, CoordinatorConfig, ServeOptions, ServerTls};
