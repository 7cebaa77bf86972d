//! Errors raised when decoding parameters break a rule.

/// One variant per validation rule, each naming the parameter it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("--beam must be at least 1 (got {0})")]
    BeamZero(usize),
    #[error("--beam {beam} exceeds the vocabulary size {vocab}")]
    BeamTooLarge { beam: usize, vocab: usize },
    #[error("--eval_len must be at least 1 (got {0})")]
    EvalLenZero(usize),
    #[error("--seq_len {seq_len} must exceed --eval_len {eval_len} so the context keeps at least one token")]
    NoRoomForContext { seq_len: usize, eval_len: usize },
    #[error("--seq_len {seq_len} exceeds the model's {n_positions} positions")]
    SeqLenPastPositions { seq_len: usize, n_positions: usize },
    #[error("--length_penalty must be a finite number (got {0})")]
    LengthPenaltyNotFinite(f64),
    #[error("--repetition_penalty must be a finite number above 0 (got {0})")]
    RepetitionPenaltyInvalid(f64),
    #[error("--eos_token_id {id} is outside the vocabulary (0..{vocab})")]
    EosOutOfVocab { id: u32, vocab: usize },
}
