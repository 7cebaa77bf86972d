//! lorabeam's coordinator library: where a job's records are checked, deduplicated and put
//! back in order.
//!
//! - [`validation`] turns a test JSONL into checked records, or a list of per-line errors;
//! - [`dedup`] decodes each distinct (truncated) context once and fans results out;
//! - [`reference_batching`] reproduces gpt2_beam.py's first step with `batch_size > 1`;
//! - [`writer`] writes the ordered predictions JSONL atomically.

pub mod dedup;
pub mod reference_batching;
pub mod validation;
pub mod writer;
