//! `lorabeam score`: the scores of a predictions file, a drop-in for microsoft/LoRA's
//! `gpt2_decode.py` followed by e2e-metrics' `measure_scores.py -p` (E2E) or by
//! WebNLG/GenerationEval's `eval.py` (WebNLG, DART: see [`super::score_task`]), or for the
//! second alone.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lorabeam_core::eval::{read_score_files, score_texts, scores_with_meteor, E2eScores, MeteorRunner, ScoreReport};
use lorabeam_core::predictions::{by_record, read_predictions, write_atomically};
use lorabeam_core::text::{E2eTexts, PostProcess, ScoreTask, VOCAB_SIZE};

use super::data::read_job_data;
use super::score_task::{
    files_of, print_task_report, score_eval_files, score_task_predictions, write_task_files, TaskScorer,
};
use super::task_args::TaskArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["data", "references"]))]
pub struct ScoreArgs {
    /// The test JSONL the predictions were decoded from (ids or text form): each line's
    /// `completion` is a reference, grouped by context as gpt2_decode.py groups them.
    #[arg(long, env = "LORABEAM_DATA", requires = "predictions", conflicts_with_all = ["references", "hypotheses"])]
    pub data: Option<PathBuf>,
    /// The predictions JSONL (`{"id": N, "predict": [ids]}`), one line for every line of --data.
    #[arg(long, env = "LORABEAM_PREDICTIONS", requires = "data")]
    pub predictions: Option<PathBuf>,
    /// Also write gpt2_decode.py's reference file here (webnlg, dart: a folder, which gets
    /// reference0, reference1, ...).
    #[arg(long = "output_ref_file", alias = "output-ref-file", env = "LORABEAM_OUTPUT_REF_FILE", requires = "data")]
    pub output_ref_file: Option<PathBuf>,
    /// Also write gpt2_decode.py's prediction file here.
    #[arg(long = "output_pred_file", alias = "output-pred-file", env = "LORABEAM_OUTPUT_PRED_FILE", requires = "data")]
    pub output_pred_file: Option<PathBuf>,
    /// measure_scores.py's reference file: each context's references, a blank line after each
    /// (e2e); eval.py's -R (webnlg, dart): the folder gpt2_decode.py wrote, or the prefix of
    /// reference0, reference1, ...
    #[arg(long, env = "LORABEAM_REFERENCES", requires = "hypotheses")]
    pub references: Option<PathBuf>,
    /// The system output: one hypothesis per line.
    #[arg(long, env = "LORABEAM_HYPOTHESES", requires = "references")]
    pub hypotheses: Option<PathBuf>,
    #[command(flatten)]
    pub options: ScoreOptions,
    #[command(flatten)]
    pub task: TaskArgs,
}

/// How scores are computed and shown; shared by `score` and `run --score`.
#[derive(Debug, Clone, Args)]
pub struct ScoreOptions {
    /// Print one JSON line last, {"BLEU":…,"NIST":…,"METEOR":…,"ROUGE_L":…,"CIDEr":…}, instead
    /// of the table (METEOR null when it could not run).
    #[arg(long, env = "LORABEAM_JSON")]
    pub json: bool,
    /// The official meteor-1.5.jar (its data/paraphrase-en.gz beside it); default: where
    /// scripts/setup.sh installs it.
    #[arg(long = "meteor-jar", alias = "meteor_jar", env = "LORABEAM_METEOR_JAR")]
    pub meteor_jar: Option<PathBuf>,
    /// Leave METEOR out (it needs java and about 2 GB of heap).
    #[arg(long = "no-meteor", alias = "no_meteor", env = "LORABEAM_NO_METEOR")]
    pub no_meteor: bool,
}

impl ScoreOptions {
    pub fn meteor(&self) -> Result<MeteorRunner, lorabeam_core::eval::MeteorUnavailable> {
        if self.no_meteor {
            return Err(lorabeam_core::eval::MeteorUnavailable::new("left out (--no-meteor)"));
        }
        MeteorRunner::locate(self.meteor_jar.as_deref())
    }

    /// Prints the scores as a table, or as one JSON line.
    pub fn print(&self, scores: &E2eScores) {
        print_scores(scores, self.json);
    }
}

/// The scores as measure_scores.py prints them, or as one JSON line last: the one way every
/// command shows them.
pub fn print_scores(scores: &E2eScores, json: bool) {
    if json {
        crate::outln!("{}", scores.to_json_line());
    } else {
        crate::outln!("{scores}");
    }
}

pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    args.task.check()?;
    if args.task.task != ScoreTask::E2e {
        return score_webnlg_or_dart(&args);
    }
    let meteor = args.options.meteor();
    let scores = match (&args.data, &args.predictions, &args.references, &args.hypotheses) {
        (Some(data), Some(predictions), _, _) => {
            let post = args.task.post();
            let report = score_predictions(data, predictions, post, &meteor)?;
            write_text_files(&report, args.output_ref_file.as_deref(), args.output_pred_file.as_deref())?;
            report.scores
        }
        (_, _, Some(references), Some(hypotheses)) => {
            let (references, hypotheses) = read_score_files(references, hypotheses)?;
            scores_with_meteor(&references, &hypotheses, &meteor)?
        }
        _ => anyhow::bail!("give --data with --predictions, or --references with --hypotheses"),
    };
    args.options.print(&scores);
    Ok(())
}

/// `--task webnlg|dart`: gpt2_decode.py's files and eval.py's scores.
fn score_webnlg_or_dart(args: &ScoreArgs) -> anyhow::Result<()> {
    let scorer = TaskScorer::new(&args.task, args.options.meteor());
    let report = match (&args.data, &args.predictions, &args.references, &args.hypotheses) {
        (Some(data), Some(predictions), _, _) => {
            let (report, files) = score_task_predictions(data, predictions, &args.task, &scorer)?;
            if let Some(files) = files_of(&report, &files, args.task.filter) {
                write_task_files(files, args.output_ref_file.as_deref(), args.output_pred_file.as_deref())?;
            }
            report
        }
        (_, _, Some(references), Some(hypotheses)) => {
            if args.task.filter.is_some() {
                anyhow::bail!("--filter picks lines of --data: eval.py's own files carry no category");
            }
            score_eval_files(references, hypotheses, &args.task, &scorer)?
        }
        _ => anyhow::bail!("give --data with --predictions, or --references with --hypotheses"),
    };
    print_task_report(&report, args.options.json, args.task.eval_py_verbatim);
    Ok(())
}

/// Reads the data and its predictions (every line predicted once, no other id) and scores them.
pub fn score_predictions(
    data: &Path,
    predictions: &Path,
    options: PostProcess,
    meteor: &Result<MeteorRunner, lorabeam_core::eval::MeteorUnavailable>,
) -> anyhow::Result<ScoreReport> {
    let records = read_job_data(data, VOCAB_SIZE)?.records;
    let lines = read_predictions(predictions)?;
    // Every line needs its prediction: a file that misses some is not the output of this data.
    by_record(predictions, lines.clone(), records.len())?;
    let texts = E2eTexts::from_lines(&records, &lines)
        .with_context(|| format!("{} against {}", predictions.display(), data.display()))?;
    Ok(score_texts(&texts, options, meteor)?)
}

/// Writes gpt2_decode.py's two files where asked.
pub fn write_text_files(
    report: &ScoreReport,
    references: Option<&Path>,
    predictions: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = references {
        write_atomically(path, report.reference_file.as_bytes())?;
    }
    if let Some(path) = predictions {
        write_atomically(path, report.prediction_file.as_bytes())?;
    }
    Ok(())
}
