//! Two predictions files compared token for token, as the conformance goldens are judged:
//! padding zeros ignored, the same ids on both sides, the compared file in ascending order.

use std::path::Path;

use super::reader::{by_record, check_ascending, read_predictions, strip_padding};
use crate::error::PredictionsError;

/// How far a predictions file agrees with a golden one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub identical: usize,
    pub total: usize,
    /// Ids whose predictions differ, ascending.
    pub differing_ids: Vec<usize>,
}

impl Agreement {
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.identical as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "identical: {}/{} ({:.2}%)", self.identical, self.total, 100.0 * self.rate())
    }
}

/// Compares `predictions` with `golden`. The golden must hold ids `0..N` once each; the
/// predictions the same ids, strictly ascending.
pub fn compare_files(golden: &Path, predictions: &Path) -> Result<Agreement, PredictionsError> {
    let gold = read_predictions(golden)?;
    let total = gold.len();
    let gold = by_record(golden, gold, total)?;
    let ours = read_predictions(predictions)?;
    check_ascending(predictions, &ours)?;
    let ours = by_record(predictions, ours, total)?;
    let differing_ids: Vec<usize> =
        (0..total).filter(|&id| strip_padding(&gold[id]) != strip_padding(&ours[id])).collect();
    Ok(Agreement { identical: total - differing_ids.len(), total, differing_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn padding_is_ignored_and_differences_are_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gold = file(dir.path(), "g", "{\"id\": 0, \"predict\": [5, 0, 0]}\n{\"id\": 1, \"predict\": [6]}\n");
        let same = file(dir.path(), "s", "{\"id\": 0, \"predict\": [5]}\n{\"id\": 1, \"predict\": [6, 0]}\n");
        let other = file(dir.path(), "o", "{\"id\": 0, \"predict\": [5]}\n{\"id\": 1, \"predict\": [7]}\n");
        assert_eq!(compare_files(&gold, &same).expect("same").to_string(), "identical: 2/2 (100.00%)");
        let agreement = compare_files(&gold, &other).expect("compared");
        assert_eq!((agreement.identical, agreement.differing_ids), (1, vec![1]));
    }

    #[test]
    fn missing_extra_and_unordered_ids_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gold = file(dir.path(), "g", "{\"id\": 0, \"predict\": [5]}\n{\"id\": 1, \"predict\": [6]}\n");
        let short = file(dir.path(), "short", "{\"id\": 0, \"predict\": [5]}\n");
        let extra = file(
            dir.path(),
            "extra",
            "{\"id\": 0, \"predict\": []}\n{\"id\": 1, \"predict\": []}\n{\"id\": 2, \"predict\": []}\n",
        );
        let swapped = file(dir.path(), "swapped", "{\"id\": 1, \"predict\": [6]}\n{\"id\": 0, \"predict\": [5]}\n");
        assert!(matches!(compare_files(&gold, &short), Err(PredictionsError::MissingId { id: 1, .. })));
        assert!(matches!(compare_files(&gold, &extra), Err(PredictionsError::UnknownId { id: 2, .. })));
        assert!(matches!(compare_files(&gold, &swapped), Err(PredictionsError::OutOfOrder { .. })));
    }
}
