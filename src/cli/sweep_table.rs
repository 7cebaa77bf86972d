//! `lorabeam sweep`'s comparison: one aligned row per adapter, with its output's lines, the
//! job's seconds and tokens/s, and the five E2E scores when the sweep scores (a WebNLG or DART
//! sweep: the paper's columns, BLEU, METEOR and TER per S/U/A row).

use super::aligned::{aligned_lines, Align};
use super::task_table::{paper_columns, paper_headers};
use lorabeam_proto::v1::Scores;

/// One adapter's job, as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub adapter: String,
    /// The job's final state, as `lorabeam jobs` names it.
    pub state: String,
    /// Predictions written to the adapter's file.
    pub lines: usize,
    /// From submission to the job's end.
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub scores: Option<Scores>,
}

const COLUMNS: [&str; 5] = ["ADAPTER", "LINES", "SECONDS", "TOKENS/S", "STATE"];
const SCORE_COLUMNS: [&str; 5] = ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"];

/// A row's task report (webnlg, dart), when its job carries one.
fn task_report(row: &SweepRow) -> Option<serde_json::Value> {
    let json = &row.scores.as_ref()?.task_report_json;
    (!json.is_empty()).then(|| serde_json::from_str(json).ok()).flatten()
}

fn cells(row: &SweepRow, scored: bool, task_headers: &[String]) -> Vec<String> {
    let mut cells = vec![
        super::client::shown(&row.adapter).into_owned(),
        row.lines.to_string(),
        format!("{:.1}", row.seconds),
        format!("{:.0}", row.tokens_per_s),
        row.state.clone(),
    ];
    if !task_headers.is_empty() {
        let columns = task_report(row).map(|r| paper_columns(&r)).unwrap_or_default();
        for header in task_headers {
            let cell = columns.iter().find(|(h, _)| h == header).map(|(_, c)| c.clone());
            cells.push(cell.unwrap_or_else(|| "n/a".into()));
        }
    } else if scored {
        let score = |value: Option<f64>| value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
        let s = row.scores.as_ref();
        cells.extend([
            score(s.map(|s| s.bleu)),
            score(s.map(|s| s.nist)),
            score(s.and_then(|s| s.meteor)),
            score(s.map(|s| s.rouge_l)),
            score(s.map(|s| s.cider)),
        ]);
    }
    cells
}

/// The table's lines: a header, then one row per adapter, each column as wide as its widest
/// cell (numbers right-aligned, so they compare at a glance).
pub fn sweep_table(rows: &[SweepRow], scored: bool) -> Vec<String> {
    let mut header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    let reports: Vec<Option<serde_json::Value>> = rows.iter().map(task_report).collect();
    let task_headers = paper_headers(&reports.iter().map(Option::as_ref).collect::<Vec<_>>());
    if !task_headers.is_empty() {
        header.extend(task_headers.iter().cloned());
    } else if scored {
        header.extend(SCORE_COLUMNS.iter().map(|c| c.to_string()));
    }
    let body: Vec<Vec<String>> = rows.iter().map(|r| cells(r, scored, &task_headers)).collect();
    aligned_lines(&header, &body, |i| if i == 0 || i == 4 { Align::Left } else { Align::Right })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(adapter: &str, scores: Option<Scores>) -> SweepRow {
        SweepRow {
            adapter: adapter.into(),
            state: "completed".into(),
            lines: 126,
            seconds: 12.34,
            tokens_per_s: 987.6,
            scores,
        }
    }

    #[test]
    fn one_aligned_row_per_adapter() {
        let lines = sweep_table(&[row("a", None), row("step-26289", None)], false);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ADAPTER     LINES  SECONDS  TOKENS/S  STATE"), "{lines:#?}");
        assert_eq!(lines[1], "a             126     12.3       988  completed");
        assert!(lines[2].starts_with("step-26289    126"), "{lines:#?}");
        assert!(!lines[0].contains("BLEU"), "no score columns unless the sweep scores");
    }

    #[test]
    fn a_scored_sweep_shows_the_five_scores() {
        let scores = Scores { bleu: 0.5, nist: 6.25, meteor: None, rouge_l: 0.4, cider: 1.5, ..Default::default() };
        let lines = sweep_table(&[row("a", Some(scores)), row("b", None)], true);
        assert!(lines[0].ends_with("BLEU    NIST  METEOR  ROUGE_L   CIDEr"), "{lines:#?}");
        assert!(lines[1].ends_with("0.5000  6.2500     n/a   0.4000  1.5000"), "{lines:#?}");
        assert!(lines[2].ends_with("n/a     n/a     n/a      n/a     n/a"), "a job without scores: {lines:#?}");
    }
}
