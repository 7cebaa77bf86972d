//! A job scored as WebNLG or DART (`JobSpec.task`): its task, `ref_num` and `filter` checked at
//! intake, each row's references (the paper's S, U, A for WebNLG) kept with the job, and its
//! report computed at completion as `lorabeam score --task TASK` computes it on the job's
//! output (gpt2_decode.py's files with `--tokenize --lower`, then eval.py's metrics).

use std::path::Path;

use lorabeam_core::eval::geneval::{default_filters, score_task, PunktParams, ScoreOptions, WordTokenizer};
use lorabeam_core::text::{keep_mask, parse_categories, CategoryFilter, E2eReferences, ScoreTask, README_REF_NUM};
use lorabeam_core::Record;
use lorabeam_proto::queue::StoredScores;
use lorabeam_proto::v1::JobSpec;
use serde::{Deserialize, Serialize};

use crate::error::{CoordinatorError, Result};
use crate::scoring::Meteor;

/// Most references per context a job may ask for: DART's largest context has 35.
pub const MAX_REF_NUM: u32 = 64;

/// A spec's scoring task, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    pub task: ScoreTask,
    pub ref_num: usize,
    /// `None`: the default rows.
    pub filter: Option<CategoryFilter>,
}

fn invalid(why: String) -> CoordinatorError {
    CoordinatorError::InvalidSpec(why)
}

/// The spec's task: `None` for E2E (`task` "" or "e2e", with no `ref_num` or `filter`).
pub fn check_task(spec: &JobSpec) -> Result<Option<TaskSpec>> {
    let task = match spec.task.as_str() {
        "" => ScoreTask::E2e,
        name => name.parse::<ScoreTask>().map_err(|e| invalid(format!("task: {e}")))?,
    };
    if task == ScoreTask::E2e {
        if spec.ref_num != 0 || !spec.filter.is_empty() {
            return Err(invalid("ref_num and filter are for task webnlg or dart, not e2e".into()));
        }
        return Ok(None);
    }
    if !spec.score {
        return Err(invalid(format!("task {task} says how the job is scored: submit it with score")));
    }
    if spec.ref_num > MAX_REF_NUM {
        return Err(invalid(format!("ref_num {} is over {MAX_REF_NUM}", spec.ref_num)));
    }
    let ref_num = if spec.ref_num == 0 { README_REF_NUM } else { spec.ref_num as usize };
    let filter = match spec.filter.as_str() {
        "" => None,
        name => Some(name.parse::<CategoryFilter>().map_err(|e| invalid(format!("filter: {e}")))?),
    };
    if filter.is_some_and(|f| f != CategoryFilter::All) && task != ScoreTask::Webnlg {
        return Err(invalid(format!("filter {} is for task webnlg: only its lines carry a category", spec.filter)));
    }
    Ok(Some(TaskSpec { task, ref_num, filter }))
}

/// What scoring a task's job needs, kept with it as JSON: each row's references.
#[derive(Debug, Serialize, Deserialize)]
struct TaskReferences {
    task: ScoreTask,
    ref_num: usize,
    rows: Vec<(CategoryFilter, E2eReferences)>,
}

/// Each row's references from the records and the submitted lines' `cate` (a default row no
/// line falls in is left out; an asked-for filter that keeps no line is refused).
pub fn task_references(task: TaskSpec, name: &str, data: &[u8], records: &[Record]) -> Result<String> {
    let categories = parse_categories(Path::new(name), data).map_err(|e| invalid(format!("score: {e}")))?;
    let filters = task.filter.map_or_else(|| default_filters(task.task, &categories), |f| vec![f]);
    let mut rows = Vec::with_capacity(filters.len());
    for filter in filters {
        let keep = keep_mask(filter, &categories, records.len()).map_err(|e| invalid(format!("score: {e}")))?;
        if keep.as_ref().is_some_and(|k| !k.contains(&true)) {
            match task.filter {
                Some(_) => return Err(invalid(format!("score: filter {filter} keeps no line of the job"))),
                None => continue,
            }
        }
        let references = E2eReferences::from_kept_records(records, keep.as_deref())
            .map_err(|e| invalid(format!("score: the job's references: {e}")))?;
        rows.push((filter, references));
    }
    let kept = TaskReferences { task: task.task, ref_num: task.ref_num, rows };
    serde_json::to_string(&kept).map_err(|e| CoordinatorError::Internal(format!("references: {e}")))
}

/// The report of a task's job, if `references_json` is a task's (else `None`: E2E). Its E2E
/// fields are zero, `groups` the last row's contexts (A's), and `task_report_json` every number.
pub fn score_if_task<'a>(
    references_json: &str,
    prediction_of: impl Fn(usize) -> Option<&'a [u32]>,
    meteor: &Meteor,
) -> Option<std::result::Result<StoredScores, String>> {
    let value: serde_json::Value = serde_json::from_str(references_json).ok()?;
    value.get("task")?;
    let kept: TaskReferences = match serde_json::from_value(value) {
        Ok(kept) => kept,
        Err(e) => return Some(Err(format!("the job's kept references: {e}"))),
    };
    let tokenizer = WordTokenizer::new(PunktParams::locate(None));
    let options = ScoreOptions {
        ref_num: kept.ref_num,
        post: kept.task.readme_post_process(),
        tokenizer: &tokenizer,
        meteor,
        chrf: true,
        verbatim: false,
    };
    let scored = kept
        .rows
        .iter()
        .map(|(filter, references)| references.texts(&prediction_of).map(|texts| (*filter, texts)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
        .and_then(|rows| score_task(kept.task, rows, options).map_err(|e| e.to_string()));
    Some(scored.and_then(|(report, _)| {
        let items = report.subsets.last().map_or(0, |s| s.scores.items);
        let groups = u32::try_from(items).map_err(|_| format!("{items} context groups do not fit the status"))?;
        Ok(StoredScores {
            bleu: 0.0,
            nist: 0.0,
            meteor: None,
            meteor_unavailable: String::new(),
            rouge_l: 0.0,
            cider: 0.0,
            groups,
            task_report_json: report.to_json().to_string(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(task: &str, ref_num: u32, filter: &str) -> JobSpec {
        JobSpec { task: task.into(), ref_num, filter: filter.into(), score: true, ..Default::default() }
    }

    #[test]
    fn bad_tasks_are_refused_by_name() {
        let refused = |s: JobSpec| check_task(&s).expect_err("refused").to_string();
        assert!(refused(spec("webnlp", 0, "")).contains("unknown task `webnlp`"));
        assert!(refused(spec("dart", 0, "seen")).contains("filter seen is for task webnlg"));
        assert!(refused(spec("webnlg", 0, "new")).contains("filter"));
        assert!(refused(spec("webnlg", 65, "")).contains("ref_num 65 is over 64"));
        assert!(refused(spec("", 6, "")).contains("for task webnlg or dart"));
        assert!(refused(JobSpec { score: false, ..spec("dart", 0, "") }).contains("submit it with score"));
        assert_eq!(check_task(&spec("e2e", 0, "")).expect("e2e"), None);
        let webnlg = check_task(&spec("webnlg", 0, "unseen")).expect("webnlg").expect("a task");
        assert_eq!((webnlg.ref_num, webnlg.filter), (6, Some(CategoryFilter::Unseen)));
    }

    #[test]
    fn kept_references_score_each_row() {
        let data = concat!(
            "{\"context\": [1, 2], \"completion\": [64, 50256], \"cate\": true}\n",
            "{\"context\": [3], \"completion\": [65, 50256], \"cate\": false}\n"
        );
        let records: Vec<Record> = (0..2)
            .map(|id| Record { id, context: vec![id as u32 + 1], completion: vec![64 + id as u32, 50256] })
            .collect();
        let task = check_task(&spec("webnlg", 0, "")).expect("task").expect("webnlg");
        let json = task_references(task, "d.jsonl", data.as_bytes(), &records).expect("references");
        let predictions = [vec![64u32], vec![66u32]];
        let meteor: Meteor = std::sync::Arc::new(Err(lorabeam_core::eval::MeteorUnavailable::new("not here")));
        let scored = score_if_task(&json, |r| predictions.get(r).map(Vec::as_slice), &meteor).expect("a task's");
        let report: serde_json::Value = serde_json::from_str(&scored.expect("scored").task_report_json).expect("JSON");
        let rows = report["scores"].as_object().expect("rows");
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["all", "seen", "unseen"], "{report}");
        assert_eq!(report["scores"]["seen"]["items"], 1, "{report}");
    }
}
