//! The predictions JSONL, gpt2_beam.py's output and gpt2_decode.py's input: one
//! `{"id": N, "predict": [ids]}` per line, in Python's `json.dumps` layout.
//!
//! - [`writer`]: written to a temporary file, synced and renamed, so no reader ever sees a
//!   partial file under the final name;
//! - [`reader`]: read back with every fault named by `file:line`, and checked against the
//!   data it predicts (no id missing, repeated or unknown);
//! - [`compare`]: two files compared token for token, as the conformance goldens are judged.

pub mod compare;
pub mod reader;
pub mod writer;

pub use compare::{compare_files, Agreement};
pub use reader::{by_record, check_ascending, parse_predictions, read_predictions, strip_padding, PredictionLine};
pub use writer::{format_prediction, write_atomically, write_predictions, PredictionFile};
