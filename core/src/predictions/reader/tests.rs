use super::*;

fn parse(text: &str) -> Result<Vec<PredictionLine>, PredictionsError> {
    parse_predictions(Path::new("pred.jsonl"), text.as_bytes())
}

fn message(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

#[test]
fn the_reference_layout_reads_back() {
    let lines = parse("{\"id\": 0, \"predict\": [318, 50256, 0]}\n{\"id\": 1, \"predict\": []}\n").expect("valid");
    assert_eq!(lines[0], PredictionLine { line: 1, id: 0, predict: vec![318, 50256, 0] });
    assert_eq!(lines[1].predict, Vec::<u32>::new());
    assert_eq!(strip_padding(&lines[0].predict), &[318, 50256]);
    assert_eq!(strip_padding(&[0, 0]), &[] as &[u32]);
}

#[test]
fn each_fault_names_file_line_and_field() {
    let good = "{\"id\": 0, \"predict\": [1]}\n";
    let cases = [
        ("{\"id\": 1, \"predict\": [1,", "pred.jsonl:2: not JSON"),
        ("[1, 2]", "pred.jsonl:2: not a JSON object"),
        ("{\"predict\": [1]}", "pred.jsonl:2: field `id` is missing"),
        ("{\"id\": -1, \"predict\": [1]}", "pred.jsonl:2: field `id` must be a non-negative integer, not -1"),
        ("{\"id\": \"1\", \"predict\": [1]}", "pred.jsonl:2: field `id` must be a non-negative integer"),
        ("{\"id\": 1}", "pred.jsonl:2: field `predict` is missing"),
        ("{\"id\": 1, \"predict\": \"a b\"}", "pred.jsonl:2: field `predict` must be an array of token ids"),
        ("{\"id\": 1, \"predict\": [1, 4294967296]}", "pred.jsonl:2: field `predict`: element 1 is not"),
        ("", "pred.jsonl:2: empty line"),
    ];
    for (line, expected) in cases {
        let got = message(&format!("{good}{line}\n{good}"));
        assert!(got.starts_with(expected), "{line}: {got}");
    }
}

#[test]
fn a_repeated_id_names_both_lines() {
    let got = message("{\"id\": 0, \"predict\": []}\n{\"id\": 1, \"predict\": []}\n{\"id\": 0, \"predict\": []}\n");
    assert_eq!(got, "pred.jsonl:3: id 0 appears again (first on line 1)");
}

#[test]
fn predictions_must_cover_the_data_exactly() {
    let path = Path::new("pred.jsonl");
    let lines = parse("{\"id\": 1, \"predict\": [5]}\n{\"id\": 0, \"predict\": [4]}\n").expect("valid");
    assert_eq!(by_record(path, lines.clone(), 2).expect("complete"), vec![vec![4], vec![5]]);
    let err = by_record(path, lines.clone(), 1).expect_err("id 1 is past the data");
    assert_eq!(err.to_string(), "pred.jsonl:1: id 1 is not in the data, which has 1 line(s) (ids 0..1)");
    let err = by_record(path, lines.clone(), 4).expect_err("ids 2 and 3 are missing");
    assert_eq!(err.to_string(), "pred.jsonl: no prediction for id 2 (2 ids missing in all)");
    let err = check_ascending(path, &lines).expect_err("1 then 0");
    assert_eq!(err.to_string(), "pred.jsonl:2: id 0 follows id 1: ids must be strictly ascending");
}
