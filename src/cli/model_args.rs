//! Flags shared by every command that loads a model or decodes: the names and defaults of
//! gpt2_beam.py, plus lorabeam's own.

use clap::Args;
use lorabeam_core::DecodeParams;
pub use lorabeam_worker::ModelArgs;

#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Beam size.
    #[arg(long, env = "LORABEAM_BEAM", default_value_t = 1)]
    pub beam: usize,
    /// Tokens to generate per line; predictions are padded with 0 to this length.
    #[arg(long = "eval_len", env = "LORABEAM_EVAL_LEN", default_value_t = 256)]
    pub eval_len: usize,
    /// Context plus generation budget: contexts keep their last seq_len - eval_len tokens.
    #[arg(long = "seq_len", env = "LORABEAM_SEQ_LEN", default_value_t = 512)]
    pub seq_len: usize,
    /// No end-of-sequence before this many generated tokens.
    #[arg(long = "min_length", env = "LORABEAM_MIN_LENGTH", default_value_t = 0)]
    pub min_length: usize,
    /// Finished hypotheses score sum / len^length_penalty.
    #[arg(
        long = "length_penalty",
        env = "LORABEAM_LENGTH_PENALTY",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub length_penalty: f64,
    /// Ban repeating any generated n-gram of this size; 0 disables.
    #[arg(long = "no_repeat_ngram_size", env = "LORABEAM_NO_REPEAT_NGRAM_SIZE", default_value_t = 4)]
    pub no_repeat_ngram_size: usize,
    /// CTRL repetition penalty on already generated tokens; 1.0 disables.
    #[arg(long = "repetition_penalty", env = "LORABEAM_REPETITION_PENALTY", default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Extra end-of-sequence token ids (`--eos_token_id 628 198`, as gpt2_beam.py's nargs='+',
    /// or repeated, or comma-separated); 50256 always ends a sequence.
    #[arg(long = "eos_token_id", env = "LORABEAM_EOS_TOKEN_ID", value_delimiter = ',', num_args = 1..)]
    pub eos_token_id: Vec<u32>,
}

impl DecodeArgs {
    pub fn params(&self) -> DecodeParams {
        DecodeParams {
            beam: self.beam,
            eval_len: self.eval_len,
            seq_len: self.seq_len,
            min_length: self.min_length,
            length_penalty: self.length_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            repetition_penalty: self.repetition_penalty,
            extra_eos_token_ids: self.eos_token_id.clone(),
        }
    }
}

/// A count flag that refuses 0 with clap's message, rather than clamping it.
pub fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}
