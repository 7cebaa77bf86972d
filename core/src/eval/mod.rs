//! The E2E metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr) as e2e-metrics' measure_scores.py
//! computes them with `-p` (tuetschek/e2e-metrics at 1b9c4d8): the file reading
//! ([`files`]), pymteval's BLEU and NIST ([`bleu`], [`nist`]), the PTB tokenisation of
//! CoreNLP 3.4.1 ([`ptb`], checked against the jar, which [`ptb_jar`] can also run), and
//! pycocoevalcap's ROUGE-L, CIDEr-D and METEOR ([`rouge`], [`cider`], [`meteor`]). Start at
//! [`e2e_scores`].
//!
//! [`geneval`] holds the WebNLG and DART metrics, as WebNLG/GenerationEval's eval.py computes
//! them (BLEU, BLEU NLTK, METEOR `-r N`, TER, chrF++).

mod bleu;
mod cider;
mod error;
mod files;
pub mod geneval;
mod meteor;
mod meteor_files;
mod mteval;
mod ngrams;
mod nist;
mod npsum;
mod ptb;
mod ptb_jar;
mod ptb_rules;
mod pystr;
mod report;
mod rouge;
mod scores;

#[cfg(test)]
mod tests;

pub use bleu::{corpus_bleu, BleuStats};
pub use cider::corpus_cider;
pub use error::{EvalError, MeteorUnavailable};
pub use files::{parse_hypotheses, parse_references, read_hypotheses, read_references, read_score_files};
pub use meteor::{MeteorRunner, METEOR_JAR_ENV};
pub use mteval::mteval_tokenize;
pub use nist::corpus_nist;
pub use ptb::{jar_output, ptb_tokenize, PUNCTUATIONS};
pub use ptb_jar::{PtbJar, PTB_JAR_ENV};
pub use report::{score_files, score_texts, scores_with_meteor, ScoreReport};
pub use rouge::{corpus_rouge_l, rouge_l_sentence};
pub use scores::{e2e_scores, e2e_scores_with, round4, E2eScores, PtbTokenizer};
