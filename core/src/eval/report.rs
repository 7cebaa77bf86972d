//! A job's scores end to end, as users get them from gpt2_decode.py and then
//! `measure_scores.py -p`: the two text files are written out, read back exactly as
//! measure_scores.py reads them, and scored. Going through the files' text keeps every rule of
//! both scripts (a prediction holding a newline becomes two lines there too).

use super::error::{EvalError, MeteorUnavailable};
use super::files::{parse_hypotheses, parse_references};
use super::meteor::MeteorRunner;
use super::scores::{e2e_scores, E2eScores};
use crate::text::{E2eTexts, PostProcess};

/// The scores and the two files they were computed from.
#[derive(Debug, Clone)]
pub struct ScoreReport {
    /// gpt2_decode.py's `--output_ref_file` text.
    pub reference_file: String,
    /// gpt2_decode.py's `--output_pred_file` text.
    pub prediction_file: String,
    pub scores: E2eScores,
    /// Context groups scored.
    pub groups: usize,
}

/// Scores `texts` as written with `options`; METEOR runs when `meteor` is a runner, and is
/// reported unavailable with its reason otherwise.
pub fn score_texts(
    texts: &E2eTexts,
    options: PostProcess,
    meteor: &Result<MeteorRunner, MeteorUnavailable>,
) -> Result<ScoreReport, EvalError> {
    let reference_file = texts.reference_file(options);
    let prediction_file = texts.prediction_file(options);
    let scores = score_files(&reference_file, &prediction_file, meteor)?;
    Ok(ScoreReport { groups: texts.hypotheses.len(), reference_file, prediction_file, scores })
}

/// Scores measure_scores.py's two files given as text.
pub fn score_files(
    reference_file: &str,
    prediction_file: &str,
    meteor: &Result<MeteorRunner, MeteorUnavailable>,
) -> Result<E2eScores, EvalError> {
    scores_with_meteor(&parse_references(reference_file), &parse_hypotheses(prediction_file), meteor)
}

/// [`e2e_scores`], with METEOR's absence reported with the reason it could not be located.
pub fn scores_with_meteor(
    references: &[Vec<String>],
    hypotheses: &[String],
    meteor: &Result<MeteorRunner, MeteorUnavailable>,
) -> Result<E2eScores, EvalError> {
    let mut scores = e2e_scores(references, hypotheses, meteor.as_ref().ok())?;
    if let Err(why) = meteor {
        scores.meteor = Err(why.clone());
    }
    Ok(scores)
}
