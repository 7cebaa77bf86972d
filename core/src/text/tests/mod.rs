//! Tests of the text module against what microsoft/LoRA's Python writes.

mod bpe;
mod conformance;
mod e2e_files;
mod formatted;
mod multi_ref;
mod pystr;
