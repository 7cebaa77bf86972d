//! gpt2_decode.py's files on hand-made cases, each expected text printed by the real script
//! (CPython 3.11) from the same lines as text.

use crate::records::Record;
use crate::text::*;

/// The script's `--input_file` lines, as `(context, completion)`.
const LINES: [(&str, &str); 5] = [
    ("name : Café £ | near : Ève", "Un café à 20 £ , ΣΑΣ 's ."),
    ("name : Café £ | near : Ève", "Second ref\n\nafter blank"),
    ("name : B", "  spaced\u{3000}out\u{1c} "),
    ("name : C", "Only one_ref , x²½ Ⓐ ."),
    ("name : D", "x"),
];

fn records() -> Vec<Record> {
    let encoded = LINES.iter().map(|(c, t)| encode_pair(c, t, EncodeOptions::E2E));
    encoded.enumerate().map(|(id, (context, completion))| Record { id, context, completion }).collect()
}

/// The sample file, in its order: id 1 before id 0 (same context), an empty prediction, one
/// without EOS (its padding decodes to `!!`), and one cut at a blank line.
fn predictions() -> Vec<(usize, Vec<u32>)> {
    vec![
        (1, vec![24423, 38251, 14988, 837, 340, 338, 7377, 96, 138, 239, 138, 96, 13, 50256, 0, 0]),
        (0, vec![14754, 50256]),
        (2, vec![]),
        (3, vec![645, 304, 418, 0, 0]),
        (4, vec![317, 198, 198, 33, 0]),
    ]
}

fn texts(predictions: &[(usize, Vec<u32>)]) -> Result<E2eTexts, E2eTextError> {
    E2eTexts::new(&records(), predictions.iter().map(|(id, p)| (*id, p.as_slice())))
}

const REFS: &str = "Un café à 20 £ , ΣΑΣ 's .\nSecond ref\n\nspaced\u{3000}out\n\nOnly one_ref , x²½ Ⓐ .\n\nx\n\n";

#[test]
fn files_match_the_script() {
    let texts = texts(&predictions()).expect("every context has a prediction");
    assert_eq!(texts.references.len(), 4, "lines 0 and 1 share a context");
    assert_eq!(texts.references[2], ["Only one_ref , x²½ Ⓐ ."], "a context with one reference");
    assert_eq!(texts.hypotheses, ["loses", "", "no eos!!", "A"], "the last-read prediction wins");
    let plain = PostProcess::default();
    assert_eq!(texts.reference_file(plain), REFS);
    assert_eq!(texts.prediction_file(plain), "loses\n\nno eos!!\nA\n");
}

#[test]
fn a_later_line_of_the_sample_file_wins_not_a_higher_id() {
    let reversed: Vec<_> = predictions().into_iter().rev().collect();
    let texts = texts(&reversed).expect("every context has a prediction");
    assert_eq!(texts.reference_file(PostProcess::default()), REFS);
    assert_eq!(texts.prediction_file(PostProcess::default()), "Wins é£ , it's ΣΑΣ.\n\nno eos!!\nA\n");
}

#[test]
fn tokenize_and_lower_match_the_script() {
    let texts = texts(&predictions()).expect("every context has a prediction");
    let cases = [
        (
            PostProcess { tokenize: true, lower: false },
            "Un café à 20 £ , ΣΑΣ ' s .\nSecond ref\n\nspaced out\n\nOnly one_ref , x²½ Ⓐ .\n\nx\n\n",
            "loses\n\nno eos ! !\nA\n",
        ),
        (
            PostProcess { tokenize: false, lower: true },
            "un café à 20 £ , σας 's .\nsecond ref\n\nspaced\u{3000}out\n\nonly one_ref , x²½ ⓐ .\n\nx\n\n",
            "loses\n\nno eos!!\na\n",
        ),
        (
            PostProcess { tokenize: true, lower: true },
            "un café à 20 £ , σας ' s .\nsecond ref\n\nspaced out\n\nonly one_ref , x²½ ⓐ .\n\nx\n\n",
            "loses\n\nno eos ! !\na\n",
        ),
    ];
    for (options, refs, preds) in cases {
        assert_eq!(texts.reference_file(options), refs, "{options:?}");
        assert_eq!(texts.prediction_file(options), preds, "{options:?}");
        let processed = texts.post_processed(options);
        assert_eq!(processed.reference_file(PostProcess::default()), refs, "{options:?}");
    }
}

#[test]
fn a_context_without_a_prediction_is_an_error() {
    // The script raises `KeyError: 'sample'` here.
    let without_3: Vec<_> = predictions().into_iter().filter(|(id, _)| *id != 3).collect();
    let err = texts(&without_3).expect_err("context C has no prediction");
    assert_eq!(err, E2eTextError::NoPrediction { context: "name : C".into(), first_id: 3 });
    assert!(err.to_string().contains("\"name : C\""), "{err}");
}

#[test]
fn unknown_ids_and_tokens_are_errors() {
    let mut bad = predictions();
    bad.push((5, vec![1]));
    assert_eq!(texts(&bad), Err(E2eTextError::UnknownId { id: 5 }));
    let mut bad = predictions();
    bad[2].1 = vec![3, 60000];
    let source = UnknownToken { token: 60000, index: 1 };
    assert_eq!(texts(&bad), Err(E2eTextError::BadPrediction { id: 2, source }));
}

#[test]
fn cut_at_end_takes_eos_then_blank_line_then_strips() {
    assert_eq!(cut_at_end(" a\n\nb<|endoftext|>c"), "a");
    assert_eq!(cut_at_end(" a<|endoftext|>\n\nb"), "a");
    assert_eq!(cut_at_end("\u{1c} a\nb \u{a0}"), "a\nb", "one newline stays; Python's whitespace is stripped");
    assert_eq!(cut_at_end("<|endoftext|>"), "");
}

/// The plan a coordinator keeps from intake gives the texts the script writes from an ordered
/// output: the highest id of a context wins.
#[test]
fn stored_references_rebuild_the_texts_of_an_ordered_output() {
    let records = records();
    let predictions = predictions();
    let mut ordered = predictions.clone();
    ordered.sort_by_key(|(id, _)| *id);
    let direct = E2eTexts::new(&records, ordered.iter().map(|(id, p)| (*id, p.as_slice()))).expect("texts");
    let plan = E2eReferences::from_records(&records).expect("plan");
    assert_eq!(plan.groups.iter().map(|g| g.record).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    let by_id: std::collections::HashMap<usize, &[u32]> = ordered.iter().map(|(id, p)| (*id, p.as_slice())).collect();
    let stored: E2eReferences = serde_json::from_str(&serde_json::to_string(&plan).expect("json")).expect("parse");
    assert_eq!(stored.texts(|id| by_id.get(&id).copied()).expect("texts"), direct);
    let missing = stored.texts(|id| if id == 3 { None } else { by_id.get(&id).copied() });
    assert!(matches!(missing, Err(E2eTextError::NoPrediction { first_id: 3, .. })));
}
