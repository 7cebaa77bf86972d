//! lorabeam's core: the rules that define a job, with no server, queue or libtorch in it.
//! The embedded `lorabeam run`, the coordinator, the workers and the benches all read a job
//! through this crate, so every entry point decodes exactly the same items.
//!
//! - [`adapter_name`]: what a job may call its adapter (one plain path component);
//! - [`records`]: a test JSONL checked into [`Record`]s, every fault named by `file:line`
//!   and field;
//! - [`params`]: decoding parameters with gpt2_beam.py's names and defaults, and the rules
//!   they are validated by;
//! - [`plan`] (with [`dedup`] and [`reference_batching`]): records to the distinct items a
//!   job decodes;
//! - [`predictions`]: the predictions JSONL (`{"id": N, "predict": [...]}`), written
//!   atomically and read back with `file:line` errors;
//! - [`text`]: GPT-2 BPE, and the reference and prediction texts gpt2_decode.py writes;
//! - [`eval`]: the E2E metrics as e2e-metrics' `measure_scores.py` computes them.

pub mod adapter_name;
pub mod dedup;
pub mod error;
pub mod eval;
pub mod params;
pub mod plan;
pub mod predictions;
pub mod quote;
pub mod records;
pub mod reference_batching;
pub mod text;

pub use adapter_name::{check_adapter_name, AdapterNameError, MAX_ADAPTER_NAME_BYTES};
pub use error::{DataError, LineError, LineFault, ParamError, PredictionsError, WriteError};
pub use params::{DecodeParams, ModelLimits, ValidDecodeParams, GPT2_EOS_TOKEN_ID};
pub use plan::{plan_items, FirstStep, ItemInput, JobPlan};
pub use records::{read_records, Record, RecordLimits};
