//! Flags shared by every command that loads a model or decodes: the names and defaults of
//! gpt2_beam.py, plus lorabeam's own.

use std::path::PathBuf;

use clap::Args;
use lorabeam_proto::DecodeParams;
use lorabeam_worker::model::{CheckpointPaths, LoraConfig, ModelCard, Precision};
use lorabeam_worker::ModelSpec;

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Checkpoint to decode: gpt2_ft.py's (full or LoRA-only), or a pretrained GPT-2.
    #[arg(long = "init_checkpoint", env = "LORABEAM_INIT_CHECKPOINT")]
    pub init_checkpoint: Option<PathBuf>,
    /// Pretrained base under a LoRA-only checkpoint: `pytorch_model.bin` or `model.safetensors`.
    #[arg(long = "base_checkpoint", env = "LORABEAM_BASE_CHECKPOINT")]
    pub base_checkpoint: Option<PathBuf>,
    /// Model shape: gpt2.sm, gpt2.md or gpt2.lg (ignored when --model_config is given).
    #[arg(long = "model_card", env = "LORABEAM_MODEL_CARD", default_value = "gpt2.sm")]
    pub model_card: ModelCard,
    /// HF-style GPT-2 `config.json` giving the model shape.
    #[arg(long = "model_config", env = "LORABEAM_MODEL_CONFIG")]
    pub model_config: Option<PathBuf>,
    /// LoRA rank r; 0 decodes the base model.
    #[arg(long = "lora_dim", env = "LORABEAM_LORA_DIM", default_value_t = 0)]
    pub lora_dim: usize,
    /// LoRA alpha; the update is scaled by lora_alpha / lora_dim.
    #[arg(long = "lora_alpha", env = "LORABEAM_LORA_ALPHA", default_value_t = 128.0)]
    pub lora_alpha: f64,
    /// Precision of the model: f32, f64, bf16 or f16 (half types score beams in f32).
    #[arg(long, env = "LORABEAM_DTYPE", default_value = "f32")]
    pub dtype: Precision,
    /// Device: cpu, cuda, cuda:N, or auto (CUDA when available).
    #[arg(long, env = "LORABEAM_DEVICE", default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch's intra-op parallelism; 0 keeps libtorch's default.
    #[arg(long, env = "LORABEAM_THREADS", default_value_t = 0)]
    pub threads: usize,
}

impl ModelArgs {
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            checkpoints: CheckpointPaths { init: self.init_checkpoint.clone(), base: self.base_checkpoint.clone() },
            model_card: self.model_card,
            model_config: self.model_config.clone(),
            lora: LoraConfig { rank: self.lora_dim, alpha: self.lora_alpha },
            precision: self.dtype,
            device: self.device.clone(),
            threads: self.threads,
        }
    }
}

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
    /// Extra end-of-sequence token id (repeatable); 50256 always ends a sequence.
    #[arg(long = "eos_token_id", env = "LORABEAM_EOS_TOKEN_ID", value_delimiter = ',')]
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
