//! gpt2_decode.py's WebNLG and DART files (`--ref_type webnlg|dart --ref_num 6 --tokenize
//! --lower`, and `--filter` for WebNLG) on the committed subsets of both test sets, against the
//! files the script wrote from them (`tests/conformance/webnlg-dart/`), and its rules on
//! hand-made lines.

use std::path::PathBuf;

use crate::predictions::read_predictions;
use crate::records::Record;
use crate::text::*;

fn subset(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance/webnlg-dart")).join(path)
}

fn expected(task: &str, filter: CategoryFilter, name: &str) -> String {
    let path = subset(&format!("{task}/gpt2_decode_{filter}/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The subset's texts under `filter`, as gpt2_decode.py groups them.
fn texts(task: &str, filter: CategoryFilter) -> E2eTexts {
    let data = subset(&format!("{task}/test_formatted.jsonl"));
    let records = read_text_records(&data, EncodeOptions::E2E).expect("subset data");
    let categories = read_categories(&data).expect("categories");
    let keep = keep_mask(filter, &categories, records.len()).expect("categories where needed");
    let lines = read_predictions(&subset(&format!("{task}/predictions.jsonl"))).expect("predictions");
    let predictions = lines.iter().map(|l| (l.id, l.predict.as_slice()));
    E2eTexts::kept(&records, keep.as_deref(), predictions).expect("every kept context predicted")
}

fn check_files(task: &str, filter: CategoryFilter, items: usize) {
    let texts = texts(task, filter);
    assert_eq!(texts.hypotheses.len(), items, "{task} {filter}");
    let readme = ScoreTask::Webnlg.readme_post_process();
    let files = texts.reference_files(README_REF_NUM, readme);
    assert_eq!(files.len(), 6);
    for (index, file) in files.iter().enumerate() {
        let name = reference_file_name(index);
        assert!(*file == expected(task, filter, &name), "{task} {filter}: {name} differs from gpt2_decode.py's");
    }
    let hypothesis = texts.prediction_file(readme);
    assert!(hypothesis == expected(task, filter, "hypothesis"), "{task} {filter}: hypothesis differs");
}

#[test]
fn webnlg_files_are_byte_identical_to_the_scripts() {
    check_files("webnlg", CategoryFilter::All, 122);
    check_files("webnlg", CategoryFilter::Seen, 62);
    check_files("webnlg", CategoryFilter::Unseen, 60);
}

#[test]
fn dart_files_are_byte_identical_to_the_scripts() {
    // The subset holds DART's empty reference, contexts that rejoin far apart, and contexts
    // with more than 6 references.
    check_files("dart", CategoryFilter::All, 96);
}

#[test]
fn dart_has_no_category_to_filter_on() {
    let data = subset("dart/test_formatted.jsonl");
    let categories = read_categories(&data).expect("categories");
    let err = keep_mask(CategoryFilter::Seen, &categories, categories.len()).expect_err("no cate");
    assert_eq!(err, E2eTextError::NoCategory { id: 0, filter: CategoryFilter::Seen });
    assert!(err.to_string().starts_with("line 1 has no `cate` field, which --filter seen reads"), "{err}");
    assert_eq!(keep_mask(CategoryFilter::All, &categories, categories.len()), Ok(None));
}

fn record(id: usize, context: &str, completion: &str) -> Record {
    let (context, completion) = encode_pair(context, completion, EncodeOptions::E2E);
    Record { id, context, completion }
}

/// Context X's first line is unseen and its second seen; Y is seen. Under `--filter seen` the
/// script keys `refer_dict` by kept lines only, so Y (first kept at line 1) comes before X
/// (first kept at line 2), X keeps only its seen reference, and a prediction for X's unseen
/// line still counts as X's hypothesis.
#[test]
fn the_filter_groups_kept_lines_and_any_line_predicts() {
    let records = [record(0, "X", "x unseen"), record(1, "Y", "y seen"), record(2, "X", "x seen"), record(3, "Z", "z")];
    let categories = [Some(false), Some(true), Some(true), Some(false)];
    let keep = keep_mask(CategoryFilter::Seen, &categories, 4).expect("all have one");
    let (a, b, c, d) = ([1u32][..].to_vec(), [17][..].to_vec(), [18][..].to_vec(), [19][..].to_vec());
    let predictions = [(2, &c[..]), (1, &b[..]), (0, &a[..]), (3, &d[..])];
    let texts = E2eTexts::kept(&records, keep.as_deref(), predictions).expect("texts");
    assert_eq!(texts.references, [vec!["y seen".to_string()], vec!["x seen".to_string()]]);
    assert_eq!(texts.hypotheses, ["2", "\""], "line 0 was read last for X; Z is not kept");
    let stored = E2eReferences::from_kept_records(&records, keep.as_deref()).expect("references");
    let records_of: Vec<(usize, usize)> = stored.groups.iter().map(|g| (g.first_record, g.record)).collect();
    assert_eq!(records_of, [(1, 1), (2, 2)], "an ordered output's last line of X is line 2");
    // An id past the data is still an error, as the script's IndexError.
    let past = E2eTexts::kept(&records, keep.as_deref(), [(4, &a[..])]);
    assert_eq!(past, Err(E2eTextError::UnknownId { id: 4 }));
}

#[test]
fn short_groups_repeat_their_first_reference_and_long_ones_are_cut() {
    let texts = E2eTexts {
        references: vec![
            vec!["A b".into()],
            (1..=8).map(|i| format!("R{i}")).collect(),
            vec!["p".into(), "Q-r".into()],
        ],
        hypotheses: vec!["h1".into(), "h2".into(), "h3".into()],
    };
    let plain = texts.reference_files(3, PostProcess::default());
    assert_eq!(plain, ["A b\nR1\np\n", "A b\nR2\nQ-r\n", "A b\nR3\np\n"]);
    let readme = texts.reference_files(2, ScoreTask::Dart.readme_post_process());
    assert_eq!(readme, ["a b\nr1\np\n", "a b\nr2\nq - r\n"]);
    assert_eq!(texts.prediction_file(PostProcess::default()), "h1\nh2\nh3\n");
}

#[test]
fn categories_are_read_with_pythons_truth_values() {
    let bytes = br#"{"context": "a", "completion": "b", "cate": true}
{"context": "a", "completion": "b", "cate": 0}
{"context": "a", "completion": "b", "cate": "yes"}
{"context": [1], "completion": [2]}
"#;
    let categories = parse_categories(std::path::Path::new("t.jsonl"), bytes).expect("JSON lines");
    assert_eq!(categories, [Some(true), Some(false), Some(true), None]);
    let err = parse_categories(std::path::Path::new("t.jsonl"), b"{\"cate\": true}\nnot json\n").expect_err("bad line");
    assert!(err.to_string().contains("t.jsonl:2: not JSON"), "{err}");
}
