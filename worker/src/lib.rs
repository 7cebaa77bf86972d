//! lorabeam's worker library: the LoRA GPT-2 model in libtorch and its beam search.
//!
//! - [`checkpoint`] reads `torch.save` archives and safetensors without Python;
//! - [`model`] builds and runs GPT-2 with LoRA merged into its weights;
//! - [`generation`] runs gpt2_beam.py's beam search over a continuously batched engine.

pub mod checkpoint;
pub mod generation;
pub mod model;
mod runtime;

pub use runtime::{load_model, ModelSpec};
