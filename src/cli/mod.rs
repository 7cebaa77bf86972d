//! The `lorabeam` command line.

pub mod client;
pub mod compare;
pub mod data;
pub mod fixture;
pub mod jobs;
pub mod model_args;
pub mod run;
pub mod score;
pub mod submit;
