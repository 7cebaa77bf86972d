//! The text form read as gpt2_encode.py encodes it, and the form detection.

use std::path::Path;

use crate::records::RecordLimits;
use crate::text::*;
use crate::LineFault;

const LINE: &[u8] = br#"{"context": "name : The Eagle", "completion": "The Eagle is a pub ."}"#;

#[test]
fn bos_and_eos_are_independent_flags() {
    let context = encode("name : The Eagle");
    let completion = encode(" The Eagle is a pub .");
    let with = |add_bos, add_eos| parse_text_line(3, LINE, EncodeOptions { add_bos, add_eos }).expect("a good line");
    let plain = with(false, false);
    assert_eq!((plain.id, &plain.context, &plain.completion), (3, &context, &completion));
    assert_eq!(with(true, false).context, [context.as_slice(), &[ENDOFTEXT_ID]].concat());
    assert_eq!(with(true, false).completion, completion);
    assert_eq!(with(false, true).context, context);
    assert_eq!(with(false, true).completion, [completion.as_slice(), &[ENDOFTEXT_ID]].concat());
    assert_eq!(EncodeOptions::default(), EncodeOptions { add_bos: false, add_eos: false }, "the script's defaults");
}

#[test]
fn the_completion_gets_one_leading_space() {
    let (_, completion) = encode_pair("x", "A pub", EncodeOptions::default());
    assert_eq!(decode(&completion).expect("in vocabulary"), " A pub");
    assert_eq!(completion, [317, 2240], "` A` and ` pub`, not `A`");
}

fn fault(line: &str) -> LineFault {
    parse_text_line(0, line.as_bytes(), EncodeOptions::E2E).expect_err("line must be refused")
}

#[test]
fn each_fault_is_named() {
    assert_eq!(parse_text_line(0, b"\xff", EncodeOptions::E2E), Err(LineFault::InvalidUtf8));
    assert_eq!(fault(" "), LineFault::Empty);
    assert!(matches!(fault("{\"context\": \"a"), LineFault::NotJson(_)));
    assert_eq!(fault("[\"a\"]"), LineFault::NotAnObject);
    assert_eq!(fault(r#"{"completion": "a"}"#), LineFault::MissingField("context"));
    assert_eq!(fault(r#"{"context": "a"}"#), LineFault::MissingField("completion"));
    assert_eq!(
        fault(r#"{"context": [1, 2], "completion": "a"}"#),
        LineFault::NotAString { field: "context", value: "[1,2]".into() }
    );
    assert_eq!(
        fault(r#"{"context": "a", "completion": null}"#),
        LineFault::NotAString { field: "completion", value: "null".into() }
    );
    let bare = parse_text_line(0, br#"{"context": "", "completion": ""}"#, EncodeOptions::default());
    assert_eq!(bare, Err(LineFault::EmptyContext));
    let with_bos = parse_text_line(0, br#"{"context": "", "completion": ""}"#, EncodeOptions::E2E);
    assert_eq!(with_bos.expect("BOS alone is a context").context, [ENDOFTEXT_ID]);
}

#[test]
fn bad_lines_are_reported_by_file_and_line() {
    let body = [LINE, b"\n{\"context\": 5, \"completion\": \"x\"}\n", LINE, b"\n\n"].concat();
    let path = Path::new("data/e2e.jsonl");
    let err = parse_text_records(path, &body, EncodeOptions::E2E, RecordLimits::vocab(VOCAB_SIZE))
        .expect_err("lines 2 and 4 are bad");
    let text = err.to_string();
    assert!(text.contains("data/e2e.jsonl:2: field `context` must be a string, not 5"), "{text}");
    assert!(text.contains("data/e2e.jsonl:4: empty line"), "{text}");
    let good =
        parse_text_records(path, &[LINE, b"\n", LINE, b"\n"].concat(), EncodeOptions::E2E, RecordLimits::vocab(1))
            .expect("two good lines");
    assert_eq!(good.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1]);
    let limits = RecordLimits { max_context_tokens: 2, ..RecordLimits::vocab(VOCAB_SIZE) };
    let err = parse_text_records(path, LINE, EncodeOptions::E2E, limits).expect_err("context is 5 tokens");
    assert!(err.to_string().contains(":1: field `context` has 5 tokens, over the limit of 2"), "{err}");
}

#[test]
fn the_form_is_told_by_the_first_context() {
    assert_eq!(detect_form(&[b"\n  \n", LINE, b"\n{\"context\": [1]}\n"].concat()), Some(JsonlForm::Text));
    assert_eq!(detect_form(b"{\"context\": [1, 2], \"completion\": [3]}\n"), Some(JsonlForm::Ids));
    assert_eq!(detect_form(b"{\"context\": 1}"), None);
    assert_eq!(detect_form(b"not json"), None);
    assert_eq!(detect_form(b"\n\n"), None);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("text.jsonl");
    std::fs::write(&file, [b"\n", LINE, b"\n"].concat()).expect("written");
    assert_eq!(detect_file_form(&file).expect("readable"), Some(JsonlForm::Text));
    assert!(detect_file_form(&dir.path().join("absent.jsonl")).is_err());
}
