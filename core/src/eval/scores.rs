//! The one entry point: the five E2E scores of a corpus, as `measure_scores.py -p` prints
//! them. BLEU and NIST come from the raw text (pymteval); METEOR, ROUGE-L and CIDEr from the
//! PTB-tokenised text (pycocoevalcap). METEOR runs in its own thread (a child JVM) while the
//! others are computed.

use std::fmt;

use serde_json::{json, Value};

use super::bleu::corpus_bleu;
use super::cider::corpus_cider;
use super::error::{EvalError, MeteorUnavailable, Result};
use super::meteor::MeteorRunner;
use super::nist::corpus_nist;
use super::ptb::ptb_tokenize;
use super::ptb_jar::PtbJar;
use super::rouge::corpus_rouge_l;

/// The five scores at full precision. BLEU is a fraction (0.7203, not 72.03).
#[derive(Debug, Clone, PartialEq)]
pub struct E2eScores {
    pub bleu: f64,
    pub nist: f64,
    pub meteor: std::result::Result<f64, MeteorUnavailable>,
    pub rouge_l: f64,
    pub cider: f64,
}

/// Which PTB tokeniser feeds METEOR, ROUGE-L and CIDEr.
#[derive(Debug, Clone, Default)]
pub enum PtbTokenizer {
    /// The Rust scanner (the default; matches the 3.4.1 jar on all the E2E text checked).
    #[default]
    Rust,
    /// The CoreNLP 3.4.1 jar itself.
    Jar(PtbJar),
}

impl PtbTokenizer {
    fn tokenize(&self, sentences: &[&str]) -> Result<Vec<String>> {
        match self {
            Self::Rust => Ok(ptb_tokenize(sentences)),
            Self::Jar(jar) => jar.tokenize(sentences),
        }
    }
}

/// Scores `hypotheses` against `references` (one non-empty group per hypothesis), with the
/// Rust PTB tokeniser. Without a METEOR runner, `meteor` says it was not asked for.
pub fn e2e_scores(
    references: &[Vec<String>],
    hypotheses: &[String],
    meteor: Option<&MeteorRunner>,
) -> Result<E2eScores> {
    e2e_scores_with(references, hypotheses, meteor, &PtbTokenizer::Rust)
}

/// [`e2e_scores`] with a chosen PTB tokeniser.
pub fn e2e_scores_with(
    references: &[Vec<String>],
    hypotheses: &[String],
    meteor: Option<&MeteorRunner>,
    tokenizer: &PtbTokenizer,
) -> Result<E2eScores> {
    if references.len() != hypotheses.len() {
        return Err(EvalError::LengthMismatch { groups: references.len(), hypotheses: hypotheses.len() });
    }
    if hypotheses.is_empty() {
        return Err(EvalError::NoInstances);
    }
    if let Some(index) = references.iter().position(Vec::is_empty) {
        return Err(EvalError::EmptyReferenceGroup { index });
    }
    // pycocoevalcap tokenises all references in one run and all hypotheses in another.
    let flat_refs: Vec<&str> = references.iter().flatten().map(String::as_str).collect();
    let tok_refs_flat = tokenizer.tokenize(&flat_refs)?;
    let hyp_strs: Vec<&str> = hypotheses.iter().map(String::as_str).collect();
    let tok_hyps = tokenizer.tokenize(&hyp_strs)?;
    let mut rest = tok_refs_flat.into_iter();
    let tok_refs: Vec<Vec<String>> = references.iter().map(|g| rest.by_ref().take(g.len()).collect()).collect();

    std::thread::scope(|scope| {
        let meteor_thread = meteor.map(|runner| {
            let (h, r) = (&tok_hyps, &tok_refs);
            scope.spawn(move || runner.score(r, h))
        });
        let bleu = corpus_bleu(references, hypotheses);
        let nist = corpus_nist(references, hypotheses);
        let rouge_l = corpus_rouge_l(&tok_refs, &tok_hyps);
        let cider = corpus_cider(&tok_refs, &tok_hyps);
        let meteor = match meteor_thread {
            None => Err(MeteorUnavailable::new("no METEOR runner was given")),
            Some(handle) => handle.join().unwrap_or_else(|_| Err(MeteorUnavailable::new("the METEOR thread panicked"))),
        };
        Ok(E2eScores { bleu, nist: nist?, meteor, rouge_l, cider })
    })
}

/// `measure_scores.py` prints `'%.4f' % score`; Rust's `{:.4}` rounds the exact binary
/// value the same way, so formatting and re-parsing gives its printed number.
pub fn round4(x: f64) -> f64 {
    format!("{x:.4}").parse().unwrap_or(x)
}

impl E2eScores {
    /// The scores as measure_scores.py prints them (rounded to 4 decimals), METEOR `null`
    /// when unavailable: `{"BLEU": .., "NIST": .., "METEOR": .., "ROUGE_L": .., "CIDEr": ..}`.
    pub fn to_json(&self) -> Value {
        let meteor = match &self.meteor {
            Ok(m) => json!(round4(*m)),
            Err(_) => Value::Null,
        };
        json!({
            "BLEU": round4(self.bleu),
            "NIST": round4(self.nist),
            "METEOR": meteor,
            "ROUGE_L": round4(self.rouge_l),
            "CIDEr": round4(self.cider),
        })
    }

    /// [`to_json`](Self::to_json) as one line in measure_scores.py's order and with its 4
    /// printed decimals: `{"BLEU":0.1226,"NIST":1.7698,"METEOR":0.1476,"ROUGE_L":0.3160,"CIDEr":0.3032}`.
    pub fn to_json_line(&self) -> String {
        let meteor = match &self.meteor {
            Ok(m) => format!("{m:.4}"),
            Err(_) => "null".to_string(),
        };
        format!(
            r#"{{"BLEU":{:.4},"NIST":{:.4},"METEOR":{meteor},"ROUGE_L":{:.4},"CIDEr":{:.4}}}"#,
            self.bleu, self.nist, self.rouge_l, self.cider
        )
    }
}

impl fmt::Display for E2eScores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SCORES:")?;
        writeln!(f, "==============")?;
        writeln!(f, "BLEU: {:.4}", self.bleu)?;
        writeln!(f, "NIST: {:.4}", self.nist)?;
        match &self.meteor {
            Ok(m) => writeln!(f, "METEOR: {m:.4}")?,
            Err(why) => writeln!(f, "METEOR: n/a ({why})")?,
        }
        writeln!(f, "ROUGE_L: {:.4}", self.rouge_l)?;
        write!(f, "CIDEr: {:.4}", self.cider)
    }
}
