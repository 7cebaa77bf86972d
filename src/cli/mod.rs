//! The `lorabeam` command line.

pub mod fixture;
pub mod model_args;
pub mod run;
