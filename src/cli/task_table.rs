//! The paper's columns of a WebNLG or DART report (BLEU, METEOR and TER; for WebNLG each of
//! them per seen, unseen and all subset), read from the report's JSON, for the tables of
//! `run --adapter` and `sweep`.

use lorabeam_core::text::CategoryFilter;
use serde_json::Value;

/// The paper's metrics, with the JSON key and the decimals shown (BLEU as multi-bleu prints it).
const METRICS: [(&str, usize); 3] = [("BLEU", 2), ("METEOR", 4), ("TER", 4)];

/// `(header, cell)` pairs in the paper's order: BLEU-S, BLEU-U, BLEU-A, METEOR-S, … when the
/// report has several subsets, else BLEU, METEOR, TER. A number the report lacks shows `n/a`.
pub fn paper_columns(report: &Value) -> Vec<(String, String)> {
    let subsets: Vec<CategoryFilter> =
        CategoryFilter::PAPER_ORDER.into_iter().filter(|f| report["scores"].get(f.name()).is_some()).collect();
    let mut columns = Vec::with_capacity(METRICS.len() * subsets.len());
    for (metric, decimals) in METRICS {
        for filter in &subsets {
            let header = match subsets.len() {
                1 => metric.to_string(),
                _ => format!("{metric}-{}", filter.letter()),
            };
            let value = report["scores"][filter.name()][metric].as_f64();
            columns.push((header, value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))));
        }
    }
    columns
}

/// The headers of a table of several reports (those of the one with the most columns); a row
/// without a report shows `n/a` under them.
pub fn paper_headers(reports: &[Option<&Value>]) -> Vec<String> {
    reports
        .iter()
        .flatten()
        .map(|r| paper_columns(r))
        .max_by_key(Vec::len)
        .unwrap_or_default()
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webnlg_has_three_subsets_per_metric_and_dart_one() {
        let subset = |b: f64| json!({"BLEU": b, "METEOR": 0.25, "TER": null});
        let webnlg = json!({"scores": {"all": subset(30.0), "seen": subset(40.5), "unseen": subset(20.0)}});
        let columns = paper_columns(&webnlg);
        let headers: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(
            headers,
            ["BLEU-S", "BLEU-U", "BLEU-A", "METEOR-S", "METEOR-U", "METEOR-A", "TER-S", "TER-U", "TER-A"]
        );
        assert_eq!(columns[0].1, "40.50");
        assert_eq!(columns[3].1, "0.2500");
        assert_eq!(columns[8].1, "n/a");
        let dart = json!({"scores": {"all": subset(12.34)}});
        let columns = paper_columns(&dart);
        assert_eq!(columns.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), ["BLEU", "METEOR", "TER"]);
        assert_eq!(paper_headers(&[None, Some(&dart), Some(&webnlg)]).len(), 9);
    }
}
