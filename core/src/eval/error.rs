//! The evaluation's errors: unreadable or mismatched score files, inputs no metric defines,
//! and a METEOR that could not run. Each names the file, the instance or the reason.

use std::path::PathBuf;

/// Why scoring failed. measure_scores.py would crash (an assertion, a `ValueError`, a
/// `ZeroDivisionError`) on each of these; here each has its own variant instead.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid UTF-8 (byte {byte_offset}); measure_scores.py reads it as strict UTF-8")]
    NotUtf8 { path: PathBuf, byte_offset: usize },
    #[error(
        "{references} has {reference_groups} reference groups but {hypotheses} has {hypothesis_lines} \
         hypotheses: measure_scores.py needs one group per hypothesis"
    )]
    CountMismatch { references: PathBuf, reference_groups: usize, hypotheses: PathBuf, hypothesis_lines: usize },
    #[error("{groups} reference groups but {hypotheses} hypotheses: one group per hypothesis is needed")]
    LengthMismatch { groups: usize, hypotheses: usize },
    #[error("reference group {index} (0-based) is empty: every hypothesis needs at least one reference")]
    EmptyReferenceGroup { index: usize },
    #[error("there is nothing to score: no hypotheses")]
    NoInstances,
    #[error("NIST is undefined: {0}")]
    NistUndefined(&'static str),
    #[error("PTB tokeniser jar failed: {0}")]
    PtbJar(String),
    #[error("no reference file: eval.py needs at least one (-nr 1 or more)")]
    NoReferenceFiles,
    #[error(
        "reference file {index} has {lines} line(s) but the hypothesis file has {hypotheses}: eval.py reads \
         item j from line j of every file"
    )]
    ReferenceFileLength { index: usize, lines: usize, hypotheses: usize },
}

/// Why there is no METEOR number. Never replaced by a guess: the scores carry this instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("METEOR unavailable: {reason}")]
pub struct MeteorUnavailable {
    pub reason: String,
}

impl MeteorUnavailable {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;
