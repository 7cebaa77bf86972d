//! The `lorabeam` command line.

pub mod aligned;
pub mod client;
pub mod compare;
pub mod data;
pub mod fixture;
pub mod follow;
pub mod jobs;
pub mod jobs_table;
pub mod launcher;
pub mod model_args;
pub mod objects;
pub mod progress;
pub mod rpc;
pub mod run;
pub mod run_adapters;
pub mod run_progress;
pub mod score;
pub mod score_task;
pub mod submit;
pub mod sweep;
pub mod sweep_table;
pub mod task_args;
pub mod task_table;
pub mod term;
pub mod workers;
