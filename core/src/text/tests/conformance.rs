//! The whole E2E test set and a golden, against the repository's conformance data and the
//! files microsoft/LoRA's gpt2_decode.py wrote (`tests/conformance/text/`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::predictions::read_predictions;
use crate::records::{read_records, Record};
use crate::text::*;

/// The conformance set: `$LORABEAM_CONFORMANCE_DIR`, or the repository's.
fn conformance(path: &str) -> PathBuf {
    let dir = std::env::var_os("LORABEAM_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance")));
    dir.join(path)
}

fn text_lines() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(conformance("data/e2e_test_formatted.jsonl")).expect("formatted data");
    let line = |l: &str| {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
        (v["context"].as_str().expect("text").to_owned(), v["completion"].as_str().expect("text").to_owned())
    };
    text.lines().map(line).collect()
}

fn ids_records() -> Vec<Record> {
    read_records(&conformance("data/e2e_test.jsonl"), VOCAB_SIZE).expect("ids data")
}

#[test]
fn the_text_form_encodes_to_the_ids_form_line_for_line() {
    let encoded =
        read_text_records(&conformance("data/e2e_test_formatted.jsonl"), EncodeOptions::E2E).expect("text data");
    let ids = ids_records();
    assert_eq!(encoded.len(), 4693);
    assert_eq!(encoded.len(), ids.len());
    let differing: Vec<usize> = encoded.iter().zip(&ids).filter(|(a, b)| a != b).map(|(a, _)| a.id).collect();
    assert!(differing.is_empty(), "lines {differing:?} differ");
}

#[test]
fn the_ids_decode_back_to_the_text() {
    // decode(context) is the text context then BOS's text; decode(completion) is the leading
    // space gpt2_encode.py adds, the text completion, then EOS's text.
    for (record, (context, completion)) in ids_records().iter().zip(text_lines()) {
        assert_eq!(decode(&record.context).expect("vocab"), format!("{context}{ENDOFTEXT}"), "line {}", record.id);
        assert_eq!(decode(&record.completion).expect("vocab"), format!(" {completion}{ENDOFTEXT}"), "{}", record.id);
    }
}

/// The script's own reading of its `--input_file`: references keyed by the context text, in
/// insertion order, each `completion.split(EOS)[0].split('\n\n')[0].strip()`.
fn script_references(lines: &[(String, String)]) -> Vec<Vec<String>> {
    let mut order: Vec<&str> = Vec::new();
    let mut refs: HashMap<&str, Vec<String>> = HashMap::new();
    for (context, completion) in lines {
        let group = refs.entry(context).or_insert_with(|| {
            order.push(context);
            Vec::new()
        });
        group.push(cut_at_end(completion).to_owned());
    }
    order.iter().map(|context| refs.remove(context).unwrap_or_default()).collect()
}

#[test]
fn references_from_ids_are_the_scripts_references_from_text() {
    let records = ids_records();
    let predictions: Vec<(usize, &[u32])> = records.iter().map(|r| (r.id, &[][..])).collect();
    let texts = E2eTexts::new(&records, predictions).expect("all predicted");
    let from_text = script_references(&text_lines());
    assert_eq!(texts.references.len(), 630, "distinct contexts");
    assert_eq!(texts.references, from_text);
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(conformance(&format!("text/{name}"))).expect("expected text written by gpt2_decode.py")
}

#[test]
fn readme_golden_files_are_byte_identical_to_the_scripts() {
    let records = read_records(&conformance("data/e2e_test_public.jsonl"), VOCAB_SIZE).expect("public data");
    let lines = read_predictions(&conformance("golden/readme-f64.jsonl")).expect("golden");
    let texts = E2eTexts::from_lines(&records, &lines).expect("every context predicted");
    assert_eq!(texts.hypotheses.len(), 105);
    assert!(texts.reference_file(PostProcess::default()) == expected("e2e_ref.txt"), "e2e_ref.txt differs");
    assert!(texts.prediction_file(PostProcess::default()) == expected("e2e_pred.txt"), "e2e_pred.txt differs");
}
