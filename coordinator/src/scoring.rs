//! Scores of a job submitted with `score`: computed when its output is complete, on a blocking
//! thread (METEOR runs java for seconds), from the references kept at intake and the job's
//! predictions, exactly as `lorabeam score` computes them on the output file.

use std::collections::HashMap;
use std::sync::Arc;

use lorabeam_core::eval::{round4, score_texts, MeteorRunner, MeteorUnavailable};
use lorabeam_core::text::{E2eReferences, PostProcess};
use lorabeam_proto::queue::StoredScores;

use crate::error::{CoordinatorError, Result};

/// Where METEOR comes from for every job this coordinator scores.
pub type Meteor = Arc<std::result::Result<MeteorRunner, MeteorUnavailable>>;

/// Scores a job whose record `r` has the prediction `predictions[item_of_record[r]]`.
pub async fn score_job(
    job_id: &str,
    references_json: String,
    item_of_record: Arc<Vec<u32>>,
    predictions: Arc<HashMap<u32, Vec<u32>>>,
    meteor: Meteor,
) -> Result<std::result::Result<StoredScores, String>> {
    let job = job_id.to_string();
    let task = tokio::task::spawn_blocking(move || {
        let prediction_of = |record: usize| {
            let item = item_of_record.get(record)?;
            predictions.get(item).map(Vec::as_slice)
        };
        if let Some(scored) = crate::task_scoring::score_if_task(&references_json, prediction_of, &meteor) {
            return Ok(scored);
        }
        let references: E2eReferences = serde_json::from_str(&references_json)
            .map_err(|e| CoordinatorError::CorruptState { job_id: job.clone(), what: format!("references: {e}") })?;
        let scored = references
            .texts(prediction_of)
            .map_err(|e| e.to_string())
            .and_then(|texts| score_texts(&texts, PostProcess::default(), &meteor).map_err(|e| e.to_string()));
        let groups = |report: &lorabeam_core::eval::ScoreReport| {
            u32::try_from(report.groups).map_err(|_| format!("{} context groups do not fit the status", report.groups))
        };
        Ok(scored.and_then(|report| {
            let groups = groups(&report)?;
            let scores = report.scores;
            Ok(StoredScores {
                bleu: round4(scores.bleu),
                nist: round4(scores.nist),
                meteor: scores.meteor.as_ref().ok().map(|m| round4(*m)),
                meteor_unavailable: scores.meteor.err().map(|why| why.reason).unwrap_or_default(),
                rouge_l: round4(scores.rouge_l),
                cider: round4(scores.cider),
                groups,
                task_report_json: String::new(),
            })
        }))
    });
    task.await.map_err(|e| CoordinatorError::Internal(format!("scoring task: {e}")))?
}
