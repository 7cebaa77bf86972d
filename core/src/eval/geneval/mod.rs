//! The WebNLG and DART metrics as WebNLG/GenerationEval's `eval.py` computes them (microsoft/
//! LoRA's copy, GenerationEval at 8067849, with its pinned nltk 3.5 and pyter3 0.3), for the
//! files gpt2_decode.py writes with `--ref_type webnlg|dart`:
//!
//! - [`files`]: the files read as eval.py reads them, with or without the phantom item their
//!   final newline makes (microsoft/LoRA issue #138);
//! - [`multi_bleu`]: BLEU as Moses' `multi-bleu-detok.perl` prints it;
//! - [`word_tokenize`]: nltk's `word_tokenize`, i.e. [`punkt`] sentences (the model read by
//!   [`punkt_params`] through [`pickle`]) cut by [`treebank`] rules, feeding
//!   [`nltk_bleu`] (BLEU NLTK), METEOR 1.5 (`-r N`, through [`crate::eval::MeteorRunner`])
//!   and [`ter`] (pyter's TER);
//! - [`chrf`]: chrF++ as GenerationEval's `chrF.py`;
//! - [`scores`]: all of them over one set of files, [`task`]: over a job's subsets (WebNLG's
//!   seen, unseen, all), and [`report`]: how they are shown.

pub mod chrf;
pub mod files;
pub mod multi_bleu;
pub mod nltk_bleu;
pub mod pickle;
pub mod punkt;
pub mod punkt_params;
pub mod report;
pub mod scores;
pub mod task;
pub mod ter;
pub mod treebank;
pub mod word_tokenize;

pub use chrf::corpus_chrf;
pub use files::EvalFiles;
pub use multi_bleu::{multi_bleu, perl_tokenize, MultiBleu};
pub use nltk_bleu::{fsum, nltk_corpus_bleu};
pub use punkt_params::{PunktParams, PunktUnavailable, PUNKT_ENV};
pub use report::{eval_py_table, SubsetScores, TaskReport};
pub use scores::{geneval_scores, score_texts, GenEvalScores, ScoreOptions, ScoredFiles, Unavailable, PHANTOM_METEOR};
pub use task::{default_filters, score_task};
pub use ter::{corpus_ter, pyter_ter};
pub use treebank::treebank_tokenize;
pub use word_tokenize::{is_split_form, WordTokenizer};

#[cfg(test)]
mod tests;
