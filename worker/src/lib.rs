//! lorabeam's worker library: the LoRA GPT-2 model in libtorch and its beam search.
//!
//! - [`checkpoint`] reads `torch.save` archives and safetensors without Python;
//! - [`model`] builds and runs GPT-2 with LoRA merged into its weights;
//! - [`generation`] runs gpt2_beam.py's beam search over a continuously batched engine;
//! - [`fleet`] claims shards from Redis, feeds the engine and reports results to the coordinator;
//! - [`model_files`] fetches model files named by URL into the object cache;
//! - [`process`] sets up the process around libtorch: allocator, OpenMP wait policy, threads.

pub mod checkpoint;
pub mod fleet;
pub mod generation;
pub mod model;
mod model_args;
pub mod model_files;
pub mod process;
mod runtime;

pub use model_args::ModelArgs;
pub use runtime::{load_model, ModelSpec};
