use super::*;
use crate::error::MAX_REPORTED_ERRORS;

const VOCAB: usize = 50257;

fn fault(line: &str) -> LineFault {
    parse_line(0, line.as_bytes(), VOCAB).expect_err("line must be refused")
}

fn record(id: usize, context: &[u32], completion: &[u32]) -> Record {
    Record { id, context: context.to_vec(), completion: completion.to_vec() }
}

#[test]
fn good_lines_parse() {
    let line = parse_line(4, br#"{"context": [1, 2, 50256], "completion": [3, 50256]}"#, VOCAB).expect("valid");
    assert_eq!(line, record(4, &[1, 2, 50256], &[3, 50256]), "the completion is kept for scoring");
    let bare = parse_line(0, br#"{"context": [7]}"#, VOCAB).expect("completion is optional");
    assert_eq!(bare, record(0, &[7], &[]));
}

#[test]
fn each_fault_is_named() {
    assert_eq!(parse_line(0, b"\xff\xfe", VOCAB), Err(LineFault::InvalidUtf8));
    assert_eq!(fault("   "), LineFault::Empty);
    assert!(matches!(fault("{\"context\": [1,"), LineFault::NotJson(_)));
    assert_eq!(fault("[1, 2]"), LineFault::NotAnObject);
    assert_eq!(fault(r#"{"completion": [1]}"#), LineFault::MissingField("context"));
    assert_eq!(fault(r#"{"context": "1 2"}"#), LineFault::NotAnArray("context"));
    assert_eq!(fault(r#"{"context": []}"#), LineFault::EmptyContext);
    assert_eq!(
        fault(r#"{"context": [1, -4]}"#),
        LineFault::NotATokenId { field: "context", index: 1, value: "-4".into() }
    );
    assert_eq!(
        fault(r#"{"context": [1, 2.5]}"#),
        LineFault::NotATokenId { field: "context", index: 1, value: "2.5".into() }
    );
    assert_eq!(
        fault(r#"{"context": [50257]}"#),
        LineFault::OutOfVocab { field: "context", index: 0, id: 50257, vocab: VOCAB }
    );
    assert_eq!(
        fault(r#"{"context": [1], "completion": [1, 99999999]}"#),
        LineFault::OutOfVocab { field: "completion", index: 1, id: 99999999, vocab: VOCAB }
    );
    assert_eq!(
        fault(r#"{"context": [4294967296]}"#),
        LineFault::OutOfVocab { field: "context", index: 0, id: 4294967296, vocab: VOCAB },
        "ids past u32 are refused, not truncated"
    );
    assert_eq!(fault(r#"{"context": [1], "completion": "text"}"#), LineFault::NotAnArray("completion"));
}

#[test]
fn file_errors_name_file_and_line_and_keep_count() {
    let mut text = String::from("{\"context\": [1]}\n");
    for _ in 0..30 {
        text.push_str("{\"context\": []}\n");
    }
    let err =
        parse_records(Path::new("test.jsonl"), text.as_bytes(), RecordLimits::vocab(VOCAB)).expect_err("bad lines");
    let DataError::BadLines { errors, total, .. } = &err else { panic!("{err}") };
    assert_eq!((*total, errors.len(), errors[0].line), (30, MAX_REPORTED_ERRORS, 2));
    let message = err.to_string();
    assert!(message.contains("test.jsonl:2: field `context` is empty"), "{message}");
    assert!(message.contains("and 10 more"), "{message}");
}

#[test]
fn ids_are_line_numbers_and_crlf_is_accepted() {
    let text = b"{\"context\": [1]}\r\n{\"context\": [2]}\n";
    let records = parse_records(Path::new("x"), text, RecordLimits::vocab(VOCAB)).expect("valid");
    assert_eq!(records, vec![record(0, &[1], &[]), record(1, &[2], &[])]);
    assert!(matches!(parse_records(Path::new("x"), b"", RecordLimits::vocab(VOCAB)), Err(DataError::NoRecords { .. })));
}

#[test]
fn service_limits_name_the_line() {
    let limits = RecordLimits { vocab_size: VOCAB, max_lines: 3, max_line_bytes: 40, max_context_tokens: 2 };
    let text = "{\"context\": [1, 2]}\n{\"context\": [1, 2, 3]}\n{\"context\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n";
    let Err(DataError::BadLines { errors, .. }) = parse_records(Path::new("x"), text.as_bytes(), limits) else {
        panic!("limits must be enforced");
    };
    assert_eq!(errors[0], LineError { line: 2, fault: LineFault::ContextTooLong { tokens: 3, limit: 2 } });
    assert!(matches!(errors[1].fault, LineFault::LineTooLong { limit: 40, .. }));
    let four = "{\"context\": [1]}\n".repeat(4);
    let err = parse_records(Path::new("x"), four.as_bytes(), limits).expect_err("too many lines");
    assert!(matches!(err, DataError::TooManyLines { limit: 3, .. }));
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = std::env::temp_dir();
    let err = read_records(&dir, VOCAB).expect_err("a directory is not data");
    assert!(matches!(err, DataError::IsADirectory { .. }), "{err}");
    assert!(err.to_string().ends_with("is a directory, not a JSONL file"), "{err}");
}
