//! Which data set predictions are scored as, and how: the flags `score`, `run`, `submit` and
//! `sweep` share. `e2e` is gpt2_decode.py then e2e-metrics' measure_scores.py -p; `webnlg` and
//! `dart` are gpt2_decode.py --ref_type webnlg|dart then WebNLG/GenerationEval's eval.py, as
//! microsoft/LoRA's README runs them.

use std::path::PathBuf;

use clap::Args;
use lorabeam_core::eval::geneval::{PunktParams, WordTokenizer};
use lorabeam_core::text::{CategoryFilter, PostProcess, ScoreTask, README_REF_NUM};

use super::model_args::at_least_one;

#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// The data set: e2e (BLEU, NIST, METEOR, ROUGE-L, CIDEr, as measure_scores.py -p), webnlg or
    /// dart (BLEU, BLEU NLTK, METEOR, TER and chrF++, as GenerationEval's eval.py).
    #[arg(long, env = "LORABEAM_TASK", default_value = "e2e")]
    pub task: ScoreTask,
    /// gpt2_decode.py's --filter for WebNLG: all, seen or unseen categories (the lines' `cate`,
    /// in WebNLG's text form). Default: the paper's S, U and A rows when every line has one.
    #[arg(long, env = "LORABEAM_FILTER")]
    pub filter: Option<CategoryFilter>,
    /// gpt2_decode.py's --ref_num, eval.py's -nr (webnlg, dart): references per context, the
    /// first repeated where a context has fewer, the rest dropped.
    #[arg(long = "ref_num", alias = "ref-num", env = "LORABEAM_REF_NUM", default_value_t = README_REF_NUM, value_parser = at_least_one())]
    pub ref_num: usize,
    /// gpt2_decode.py's --tokenize (`--tokenize false` to turn off): split words from other
    /// characters. Default: off for e2e, on for webnlg and dart (the README's commands).
    #[arg(long, env = "LORABEAM_TOKENIZE", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub tokenize: Option<bool>,
    /// gpt2_decode.py's --lower (`--lower false` to turn off). Default as --tokenize.
    #[arg(long, env = "LORABEAM_LOWER", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub lower: Option<bool>,
    /// nltk's English Punkt model (tokenizers/punkt/PY3/english.pickle or a punkt_tab/english
    /// folder), for word_tokenize on text not in --tokenize form. Default: NLTK_DATA,
    /// ~/nltk_data, then the system folders, as nltk looks.
    #[arg(long, env = "LORABEAM_PUNKT")]
    pub punkt: Option<PathBuf>,
    /// webnlg, dart: print the table eval.py prints for microsoft/LoRA's README command, on the
    /// files as gpt2_decode.py writes them, instead of lorabeam's: their final newline makes a
    /// phantom last item, so METEOR is -1 and TER averages one more 1.0 (LoRA issue #138).
    #[arg(long = "eval-py-verbatim", alias = "eval_py_verbatim", env = "LORABEAM_EVAL_PY_VERBATIM")]
    pub eval_py_verbatim: bool,
}

impl TaskArgs {
    /// gpt2_decode.py's post-processing: the flags where given, else the task's README's.
    pub fn post(&self) -> PostProcess {
        let readme = self.task.readme_post_process();
        PostProcess { tokenize: self.tokenize.unwrap_or(readme.tokenize), lower: self.lower.unwrap_or(readme.lower) }
    }

    /// word_tokenize with the Punkt model, if one is found.
    pub fn word_tokenizer(&self) -> WordTokenizer {
        WordTokenizer::new(PunktParams::locate(self.punkt.as_deref()))
    }

    /// Refuses flags that mean nothing for the task.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.task == ScoreTask::E2e && self.eval_py_verbatim {
            anyhow::bail!("--eval-py-verbatim is for --task webnlg or dart (eval.py's table)");
        }
        match self.filter {
            Some(filter) if filter != CategoryFilter::All && self.task != ScoreTask::Webnlg => {
                anyhow::bail!("--filter {filter} is for --task webnlg: only WebNLG's lines carry a category (`cate`)")
            }
            _ => {}
        }
        Ok(())
    }
}
