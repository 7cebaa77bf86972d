//! The two text files of `measure_scores.py -p REF HYP`, read by its rules: strict UTF-8
//! (a BOM is kept as a character), lines split as `codecs` splits them and each stripped of
//! Python whitespace. References come in groups separated by blank lines, and a file with no
//! blank line at all is single-reference (each line its own group); hypotheses are one per
//! line, blank lines included (they are empty hypotheses).

use std::path::Path;

use super::error::{EvalError, Result};
use super::pystr::{py_lines, py_strip};

/// Reference groups from the text of a references file.
///
/// Each blank line closes a group, so two blank lines in a row leave an empty group (which
/// measure_scores.py then fails on; [`crate::eval::e2e_scores`] reports it). Only one
/// trailing empty group is dropped, as measure_scores.py drops it.
pub fn parse_references(text: &str) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    for line in py_lines(text) {
        let line = py_strip(line);
        if line.is_empty() {
            groups.push(Vec::new());
        } else if let Some(last) = groups.last_mut() {
            last.push(line.to_string());
        }
    }
    if groups.last().is_some_and(|g| g.is_empty()) {
        groups.pop();
    }
    // One group means the file had no blank line: measure_scores.py then reads it as one
    // reference per instance, even when the author meant a single multi-reference group.
    if groups.len() == 1 {
        return groups.remove(0).into_iter().map(|line| vec![line]).collect();
    }
    groups
}

/// Hypotheses from the text of a system-output file: every line, stripped.
pub fn parse_hypotheses(text: &str) -> Vec<String> {
    py_lines(text).into_iter().map(|line| py_strip(line).to_string()).collect()
}

/// Reads a references file (see [`parse_references`]).
pub fn read_references(path: &Path) -> Result<Vec<Vec<String>>> {
    Ok(parse_references(&read_utf8(path)?))
}

/// Reads a hypotheses file (see [`parse_hypotheses`]).
pub fn read_hypotheses(path: &Path) -> Result<Vec<String>> {
    Ok(parse_hypotheses(&read_utf8(path)?))
}

/// Reads both files and checks there is one reference group per hypothesis, the check
/// measure_scores.py makes with a bare `assert`.
pub fn read_score_files(references: &Path, hypotheses: &Path) -> Result<(Vec<Vec<String>>, Vec<String>)> {
    let refs = read_references(references)?;
    let hyps = read_hypotheses(hypotheses)?;
    if refs.len() != hyps.len() {
        return Err(EvalError::CountMismatch {
            references: references.to_path_buf(),
            reference_groups: refs.len(),
            hypotheses: hypotheses.to_path_buf(),
            hypothesis_lines: hyps.len(),
        });
    }
    Ok((refs, hyps))
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Read { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes)
        .map_err(|e| EvalError::NotUtf8 { path: path.to_path_buf(), byte_offset: e.utf8_error().valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(groups: &[&[&str]]) -> Vec<Vec<String>> {
        groups.iter().map(|g| g.iter().map(|s| s.to_string()).collect()).collect()
    }

    #[test]
    fn reference_groups_follow_measure_scores() {
        assert_eq!(parse_references("a\nb\n\nc\n"), owned(&[&["a", "b"], &["c"]]));
        // Trailing blank lines: only one empty group is dropped.
        assert_eq!(parse_references("a\n\nb\n\n"), owned(&[&["a"], &["b"]]));
        assert_eq!(parse_references("a\n\nb\n\n\n"), owned(&[&["a"], &["b"], &[]]));
        // Two blank lines in a row make an empty group.
        assert_eq!(parse_references("a\n\n\nb"), owned(&[&["a"], &[], &["b"]]));
        // No blank line at all: single-reference file.
        assert_eq!(parse_references(" a \nb"), owned(&[&["a"], &["b"]]));
        assert!(parse_references("").is_empty());
    }

    #[test]
    fn hypotheses_keep_blank_lines() {
        assert_eq!(parse_hypotheses("a \n\nb\n"), ["a", "", "b"]);
        assert_eq!(parse_hypotheses("a\n\n"), ["a", ""]);
    }

    #[test]
    fn mismatch_names_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (r, h) = (dir.path().join("ref.txt"), dir.path().join("hyp.txt"));
        std::fs::write(&r, "a\n\nb\n").expect("write");
        std::fs::write(&h, "a\n").expect("write");
        let err = read_score_files(&r, &h).expect_err("mismatch");
        let msg = err.to_string();
        assert!(
            msg.contains("ref.txt") && msg.contains("hyp.txt") && msg.contains(" 2 ") && msg.contains(" 1 "),
            "{msg}"
        );
        std::fs::write(&h, [0x61, 0xff, 0x0a]).expect("write");
        assert!(matches!(read_hypotheses(&h), Err(EvalError::NotUtf8 { byte_offset: 1, .. })));
    }
}
