//! `lorabeam score --task webnlg|dart`: microsoft/LoRA's gpt2_decode.py with `--ref_type
//! webnlg|dart` (`--ref_num`, `--filter`, `--tokenize`, `--lower`), then WebNLG/GenerationEval's
//! eval.py on its files (`-nr`), or on eval.py's own files; the paper's S, U and A rows for
//! WebNLG in one table.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lorabeam_core::eval::geneval::{
    default_filters, eval_py_table, geneval_scores, score_task, EvalFiles, ScoreOptions, ScoredFiles, SubsetScores,
    TaskReport, WordTokenizer,
};
use lorabeam_core::eval::{MeteorRunner, MeteorUnavailable};
use lorabeam_core::predictions::{by_record, read_predictions, write_atomically};
use lorabeam_core::text::{keep_mask, reference_file_name, CategoryFilter, E2eTexts, VOCAB_SIZE};
use lorabeam_core::Record;

use super::data::read_job_data;
use super::task_args::TaskArgs;

/// What scoring a WebNLG or DART job needs besides its texts.
pub struct TaskScorer {
    pub tokenizer: WordTokenizer,
    pub meteor: Result<MeteorRunner, MeteorUnavailable>,
}

impl TaskScorer {
    /// The task's word_tokenize, and METEOR from `meteor`.
    pub fn new(task: &TaskArgs, meteor: Result<MeteorRunner, MeteorUnavailable>) -> Self {
        Self { tokenizer: task.word_tokenizer(), meteor }
    }

    pub fn options<'a>(&'a self, task: &TaskArgs) -> ScoreOptions<'a> {
        ScoreOptions {
            ref_num: task.ref_num,
            post: task.post(),
            tokenizer: &self.tokenizer,
            meteor: &self.meteor,
            chrf: !task.eval_py_verbatim,
            verbatim: task.eval_py_verbatim,
        }
    }
}

/// The data's records and predictions, scored per subset; each subset's files come with it.
pub fn score_task_predictions(
    data: &Path,
    predictions: &Path,
    task: &TaskArgs,
    scorer: &TaskScorer,
) -> anyhow::Result<(TaskReport, Vec<ScoredFiles>)> {
    let job = read_job_data(data, VOCAB_SIZE)?;
    let (records, categories) = (job.records, job.categories);
    let lines = read_predictions(predictions)?;
    // Every line needs its prediction: a file that misses some is not the output of this data.
    by_record(predictions, lines.clone(), records.len())?;
    let rows: Vec<(usize, &[u32])> = lines.iter().map(|l| (l.id, l.predict.as_slice())).collect();
    score_task_records(data, &categories, &records, &rows, task, scorer)
        .with_context(|| format!("{} against {}", predictions.display(), data.display()))
}

/// Records read from `data` and their predictions `(record id, ids)`, scored per subset:
/// `--filter`'s, else WebNLG's S, U and A when every line has its category, else all.
pub fn score_task_records(
    data: &Path,
    categories: &[Option<bool>],
    records: &[Record],
    rows: &[(usize, &[u32])],
    task: &TaskArgs,
    scorer: &TaskScorer,
) -> anyhow::Result<(TaskReport, Vec<ScoredFiles>)> {
    let filters = task.filter.map_or_else(|| default_filters(task.task, categories), |f| vec![f]);
    let mut subsets = Vec::with_capacity(filters.len());
    for filter in filters {
        let keep = keep_mask(filter, categories, records.len()).with_context(|| format!("{}", data.display()))?;
        // A default row no line falls in (data all seen, or all unseen) is left out.
        if task.filter.is_none() && keep.as_ref().is_some_and(|k| !k.contains(&true)) {
            continue;
        }
        subsets.push((filter, E2eTexts::kept(records, keep.as_deref(), rows.iter().copied())?));
    }
    Ok(score_task(task.task, subsets, scorer.options(task))?)
}

/// The subset whose files `--output_ref_file` and `--output_pred_file` get: `--filter`'s,
/// else all.
pub fn files_of<'a>(
    report: &TaskReport,
    files: &'a [ScoredFiles],
    filter: Option<CategoryFilter>,
) -> Option<&'a ScoredFiles> {
    let wanted = filter.unwrap_or_default();
    report.subsets.iter().position(|s| s.filter == wanted).and_then(|i| files.get(i))
}

/// Writes gpt2_decode.py's files: `reference0` … into the `refs` folder, the hypotheses to `hyps`.
pub fn write_task_files(files: &ScoredFiles, refs: Option<&Path>, hyps: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = refs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (index, text) in files.reference_files.iter().enumerate() {
            write_atomically(&dir.join(reference_file_name(index)), text.as_bytes())?;
        }
    }
    if let Some(path) = hyps {
        write_atomically(path, files.prediction_file.as_bytes())?;
    }
    Ok(())
}

/// eval.py's `-R` files: `reference0` … in a folder, or a prefix (`PREFIX0` …, or `PREFIX`
/// itself for one reference, as eval.py reads them).
fn reference_paths(references: &Path, ref_num: usize) -> Vec<PathBuf> {
    if references.is_dir() {
        return (0..ref_num).map(|i| references.join(reference_file_name(i))).collect();
    }
    if ref_num == 1 {
        return vec![references.to_path_buf()];
    }
    (0..ref_num).map(|i| PathBuf::from(format!("{}{i}", references.display()))).collect()
}

fn read_utf8(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid UTF-8 (byte {}): eval.py reads it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// eval.py's own files, scored as one set.
pub fn score_eval_files(
    references: &Path,
    hypotheses: &Path,
    task: &TaskArgs,
    scorer: &TaskScorer,
) -> anyhow::Result<TaskReport> {
    let paths = reference_paths(references, task.ref_num);
    let refs = paths.iter().map(|p| read_utf8(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let hyps = read_utf8(hypotheses)?;
    let parsed = match task.eval_py_verbatim {
        true => EvalFiles::parse_verbatim(&refs, &hyps),
        false => EvalFiles::parse(&refs, &hyps),
    };
    let files = parsed.with_context(|| {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!("{} against {}", hypotheses.display(), names.join(", "))
    })?;
    let options = scorer.options(task);
    let scores = geneval_scores(&files, task.ref_num, options.tokenizer, options.meteor, options.chrf);
    let subsets = vec![SubsetScores { filter: CategoryFilter::All, scores }];
    Ok(TaskReport { task: task.task, ref_num: task.ref_num, post: None, subsets })
}

/// The report as lorabeam's table, as one JSON line, or as eval.py's table(s).
pub fn print_task_report(report: &TaskReport, json: bool, verbatim: bool) {
    if json {
        let mut value = report.to_json();
        value["eval_py_verbatim"] = serde_json::Value::Bool(verbatim);
        crate::outln!("{value}");
    } else if verbatim {
        let several = report.subsets.len() > 1;
        for subset in &report.subsets {
            if several {
                crate::outln!("{} ({}):", subset.filter.letter(), subset.filter);
            }
            super::term::out_text(&eval_py_table(&subset.scores, false));
        }
    } else {
        super::term::out_text(&report.to_string());
    }
}
