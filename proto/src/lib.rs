//! lorabeam's contract: the types every component agrees on.
//!
//! Today this is the decoding-parameter schema and its validation rules, shared by the
//! embedded `lorabeam run`, the coordinator's job intake and the worker's engine, so that a
//! job is judged by the same rules wherever it enters.

mod decode_params;
mod error;

pub use decode_params::{DecodeParams, ModelLimits, ValidDecodeParams, GPT2_EOS_TOKEN_ID};
pub use error::ParamError;
