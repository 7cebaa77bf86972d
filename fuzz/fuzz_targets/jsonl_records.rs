//! The JSONL record parser on arbitrary bytes: every line is accepted or refused with a
//! line-numbered error; never a panic. (Seeds: lines of the conformance data, by fuzz.sh.)
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lorabeam_core::records::parse_records;
use lorabeam_core::{DataError, RecordLimits};
use lorabeam_fuzz::guard::{init, on_worker_stack};

fuzz_target!(init: init(Vec::new), |data: &[u8]| {
    let limits = RecordLimits { vocab_size: 50257, max_lines: 10_000, max_line_bytes: 1 << 16, max_context_tokens: 4096 };
    on_worker_stack(|| match parse_records(Path::new("fuzz.jsonl"), data, limits) {
        Ok(records) => assert!(records.iter().all(|r| !r.context.is_empty() && r.context.iter().all(|&t| t < 50257))),
        Err(DataError::BadLines { errors, total, .. }) => assert!(!errors.is_empty() && errors.len() <= total),
        Err(_) => {}
    });
});
