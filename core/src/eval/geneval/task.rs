//! A WebNLG or DART job scored end to end: which subsets (the paper's S, U and A rows for
//! WebNLG lines that carry their category), each subset's texts written as gpt2_decode.py
//! writes them and scored as eval.py scores its files.

use super::report::{SubsetScores, TaskReport};
use super::scores::{score_texts, ScoreOptions, ScoredFiles};
use crate::eval::EvalError;
use crate::text::{CategoryFilter, E2eTexts, ScoreTask};

/// The subsets scored when none is asked for: S, U and A for WebNLG when every line has its
/// category (its text form), else A alone.
pub fn default_filters(task: ScoreTask, categories: &[Option<bool>]) -> Vec<CategoryFilter> {
    let categorised = !categories.is_empty() && categories.iter().all(Option::is_some);
    match task {
        ScoreTask::Webnlg if categorised => CategoryFilter::PAPER_ORDER.to_vec(),
        _ => vec![CategoryFilter::All],
    }
}

/// Scores each subset's texts; the report lists them in the order given, with their files.
pub fn score_task(
    task: ScoreTask,
    subsets: Vec<(CategoryFilter, E2eTexts)>,
    options: ScoreOptions<'_>,
) -> Result<(TaskReport, Vec<ScoredFiles>), EvalError> {
    let mut scored = Vec::with_capacity(subsets.len());
    let mut files = Vec::with_capacity(subsets.len());
    for (filter, texts) in subsets {
        let subset = score_texts(&texts, options)?;
        scored.push(SubsetScores { filter, scores: subset.scores.clone() });
        files.push(subset);
    }
    let report = TaskReport { task, ref_num: options.ref_num, post: Some(options.post), subsets: scored };
    Ok((report, files))
}
