//! `lorabeam jobs` as a table: a header, one aligned row per job, and each job's output path as
//! the coordinator sees it (on its disk, not necessarily this machine's).

use lorabeam_proto::job_state_name;
use lorabeam_proto::v1::JobStatus;

use super::aligned::{aligned_lines, Align};
use super::client::{scores_summary, shown};

const HEADER: [&str; 9] =
    ["JOB", "CREATED (UTC)", "STATE", "MODEL", "ADAPTER", "RECORDS", "SHARDS", "TOKENS/S", "NAME"];

/// `unix_ms` as `YYYY-MM-DD HH:MM:SS` in UTC (civil-from-days, H. Hinnant's algorithm).
pub fn utc_time(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".into();
    }
    let secs = unix_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn row(s: &JobStatus) -> [String; 9] {
    [
        shown(&s.job_id).into_owned(),
        utc_time(s.created_unix_ms),
        job_state_name(s.state),
        shown(&s.model_id).into_owned(),
        if s.adapter.is_empty() { "-".into() } else { shown(&s.adapter).into_owned() },
        format!("{}/{}", s.records_done, s.records),
        format!("{}/{}", s.shards_done, s.shards),
        format!("{:.0}", s.tokens_per_s),
        shown(&s.name).into_owned(),
    ]
}

/// The table's lines: header and rows padded to each column's widest cell, then what a row
/// cannot hold (output path on the coordinator, errors, failed records) on indented lines.
pub fn jobs_table(jobs: &[JobStatus]) -> Vec<String> {
    let rows: Vec<Vec<String>> = jobs.iter().map(|job| row(job).to_vec()).collect();
    let mut aligned = aligned_lines(&HEADER, &rows, |_| Align::Left).into_iter();
    let mut lines: Vec<String> = aligned.next().into_iter().collect();
    for (row, job) in aligned.zip(jobs) {
        lines.push(row);
        if !job.output_path.is_empty() {
            lines.push(format!("    output (on the coordinator): {}", shown(&job.output_path)));
        }
        if let Some(scores) = &job.scores {
            lines.push(format!("    scores: {}", scores_summary(scores)));
        }
        if !job.scores_error.is_empty() {
            lines.push(format!("    not scored: {}", shown(&job.scores_error)));
        }
        if !job.failed_ids.is_empty() {
            lines.push(format!("    {} record(s) failed", job.failed_ids.len()));
        }
        if !job.error.is_empty() {
            lines.push(format!("    {}", shown(&job.error)));
        }
        if !job.stall.is_empty() {
            lines.push(format!("    stalled: {}", shown(&job.stall)));
        }
    }
    lines
}

pub fn print_jobs(jobs: &[JobStatus]) {
    if jobs.is_empty() {
        crate::outln!("no jobs");
        return;
    }
    for line in jobs_table(jobs) {
        crate::outln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(utc_time(0), "-");
        assert_eq!(utc_time(1_000), "1970-01-01 00:00:01");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_796_171_696_000), "2026-12-02 00:34:56");
    }

    #[test]
    fn columns_line_up_under_the_header() {
        let job = |id: &str, name: &str| JobStatus {
            job_id: id.into(),
            name: name.into(),
            model_id: "m".into(),
            records: 12,
            records_done: 3,
            created_unix_ms: 1_000,
            output_path: "/out/j.jsonl".into(),
            ..Default::default()
        };
        let lines = jobs_table(&[job("job-1", "a-long-name.jsonl"), job("job-22", "b")]);
        let name_at = lines[0].find("NAME").expect("header");
        let adapter_at = lines[0].find("ADAPTER").expect("header");
        assert_eq!(lines[1].get(adapter_at..adapter_at + 2), Some("- "), "no adapter: the bare base: {lines:#?}");
        assert_eq!(lines[1].find("a-long-name"), Some(name_at), "{lines:#?}");
        assert_eq!(lines[3].len(), name_at + 1, "the last row ends with its name, `b`, under NAME: {lines:#?}");
        assert_eq!(lines[2], "    output (on the coordinator): /out/j.jsonl");
    }

    #[test]
    fn a_jobs_adapter_has_its_column() {
        let job = JobStatus { job_id: "job-1".into(), adapter: "step-2000".into(), ..Default::default() };
        let lines = jobs_table(&[job]);
        let at = lines[0].find("ADAPTER").expect("header");
        assert_eq!(lines[1].get(at..at + 9), Some("step-2000"), "{lines:#?}");
    }

    #[test]
    fn a_scored_job_shows_its_scores_under_its_row() {
        let scores = lorabeam_proto::v1::Scores {
            bleu: 0.1226,
            nist: 1.7698,
            meteor: Some(0.1476),
            rouge_l: 0.316,
            cider: 0.3032,
            ..Default::default()
        };
        let job = JobStatus { job_id: "job-1".into(), scores: Some(scores), ..Default::default() };
        let lines = jobs_table(&[job]);
        assert_eq!(
            lines[2], "    scores: BLEU 0.1226  NIST 1.7698  METEOR 0.1476  ROUGE_L 0.3160  CIDEr 0.3032",
            "{lines:#?}"
        );
    }
    #[test]
    fn a_task_job_shows_the_papers_columns() {
        let report = r#"{"task":"dart","scores":{"all":{"BLEU":42.65,"METEOR":null,"TER":0.58058}}}"#;
        let scores = lorabeam_proto::v1::Scores { task_report_json: report.into(), ..Default::default() };
        assert_eq!(super::super::client::scores_summary(&scores), "dart: BLEU 42.65  METEOR n/a  TER 0.5806");
    }
}
