//! Decoding parameters with the meaning and names of gpt2_beam.py's flags.

use serde::{Deserialize, Serialize};

use crate::error::ParamError;

/// GPT-2's `<|endoftext|>`: gpt2_beam.py always treats it as an end of sequence.
pub const GPT2_EOS_TOKEN_ID: u32 = 50256;

/// Decoding parameters as a user gives them, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeParams {
    pub beam: usize,
    pub eval_len: usize,
    pub seq_len: usize,
    pub min_length: usize,
    pub length_penalty: f64,
    pub no_repeat_ngram_size: usize,
    pub repetition_penalty: f64,
    /// Extra end-of-sequence ids; 50256 is always one (as `action='append'` onto `[50256]`).
    pub extra_eos_token_ids: Vec<u32>,
}

/// The facts about a model that decoding parameters are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    pub vocab_size: usize,
    pub n_positions: usize,
}

impl ModelLimits {
    /// GPT-2's limits: every released size (small to XL) shares its vocabulary and positions.
    /// The coordinator checks jobs against them until a worker registers the real model's.
    pub const GPT2: ModelLimits = ModelLimits { vocab_size: 50257, n_positions: 1024 };
}

/// Parameters that passed every rule; only this type reaches the engine. It reads as the
/// `DecodeParams` it was made from, plus the full list of end-of-sequence ids.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDecodeParams {
    params: DecodeParams,
    /// 50256 first, then the extra ids in the order given (duplicates kept, as the reference does).
    eos_token_ids: Vec<u32>,
}

impl std::ops::Deref for ValidDecodeParams {
    type Target = DecodeParams;
    fn deref(&self) -> &DecodeParams {
        &self.params
    }
}

impl Default for DecodeParams {
    /// gpt2_beam.py's defaults.
    fn default() -> Self {
        Self {
            beam: 1,
            eval_len: 256,
            seq_len: 512,
            min_length: 0,
            length_penalty: 1.0,
            no_repeat_ngram_size: 4,
            repetition_penalty: 1.0,
            extra_eos_token_ids: Vec::new(),
        }
    }
}

impl DecodeParams {
    /// Checks every rule against the model, returning the first broken one.
    pub fn validate(&self, limits: ModelLimits) -> Result<ValidDecodeParams, ParamError> {
        if self.beam == 0 {
            return Err(ParamError::BeamZero(self.beam));
        }
        if self.beam > limits.vocab_size {
            return Err(ParamError::BeamTooLarge { beam: self.beam, vocab: limits.vocab_size });
        }
        if self.eval_len == 0 {
            return Err(ParamError::EvalLenZero(self.eval_len));
        }
        if self.seq_len <= self.eval_len {
            return Err(ParamError::NoRoomForContext { seq_len: self.seq_len, eval_len: self.eval_len });
        }
        if self.seq_len > limits.n_positions {
            return Err(ParamError::SeqLenPastPositions { seq_len: self.seq_len, n_positions: limits.n_positions });
        }
        if !self.length_penalty.is_finite() {
            return Err(ParamError::LengthPenaltyNotFinite(self.length_penalty));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(ParamError::RepetitionPenaltyInvalid(self.repetition_penalty));
        }
        let mut eos_token_ids = vec![GPT2_EOS_TOKEN_ID];
        eos_token_ids.extend_from_slice(&self.extra_eos_token_ids);
        if let Some(&id) = eos_token_ids.iter().find(|&&id| id as usize >= limits.vocab_size) {
            return Err(ParamError::EosOutOfVocab { id, vocab: limits.vocab_size });
        }
        Ok(ValidDecodeParams { params: self.clone(), eos_token_ids })
    }
}

impl ValidDecodeParams {
    /// How many context tokens are kept: the last `seq_len - eval_len`, as the reference cuts them.
    pub fn max_context_len(&self) -> usize {
        self.seq_len - self.eval_len
    }

    /// The context the model sees for a record's full context.
    pub fn truncate_context<'a>(&self, context: &'a [u32]) -> &'a [u32] {
        let keep = self.max_context_len();
        &context[context.len().saturating_sub(keep)..]
    }

    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    pub fn is_eos(&self, token: u32) -> bool {
        self.eos_token_ids.contains(&token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT2: ModelLimits = ModelLimits::GPT2;

    #[test]
    fn defaults_validate_and_always_include_50256() {
        let params = DecodeParams { extra_eos_token_ids: vec![628], ..Default::default() };
        let valid = params.validate(GPT2).expect("defaults are valid");
        assert_eq!(valid.eos_token_ids(), &[50256, 628]);
        assert!(valid.is_eos(628) && valid.is_eos(50256) && !valid.is_eos(0));
    }

    #[test]
    fn each_rule_has_its_error() {
        let base = DecodeParams::default();
        let cases = [
            (DecodeParams { beam: 0, ..base.clone() }, ParamError::BeamZero(0)),
            (DecodeParams { eval_len: 0, ..base.clone() }, ParamError::EvalLenZero(0)),
            (
                DecodeParams { seq_len: 256, ..base.clone() },
                ParamError::NoRoomForContext { seq_len: 256, eval_len: 256 },
            ),
            (
                DecodeParams { seq_len: 2048, ..base.clone() },
                ParamError::SeqLenPastPositions { seq_len: 2048, n_positions: 1024 },
            ),
            (DecodeParams { repetition_penalty: 0.0, ..base.clone() }, ParamError::RepetitionPenaltyInvalid(0.0)),
            (
                DecodeParams { extra_eos_token_ids: vec![60000], ..base.clone() },
                ParamError::EosOutOfVocab { id: 60000, vocab: 50257 },
            ),
        ];
        for (params, expected) in cases {
            assert_eq!(params.validate(GPT2), Err(expected));
        }
        let nan = DecodeParams { length_penalty: f64::NAN, ..base };
        assert!(matches!(nan.validate(GPT2), Err(ParamError::LengthPenaltyNotFinite(_))));
    }

    #[test]
    fn context_keeps_its_last_tokens() {
        let params = DecodeParams { seq_len: 6, eval_len: 3, ..Default::default() };
        let valid = params.validate(GPT2).expect("valid");
        assert_eq!(valid.truncate_context(&[1, 2, 3, 4, 5]), &[3, 4, 5]);
        assert_eq!(valid.truncate_context(&[1, 2]), &[1, 2]);
    }
}
