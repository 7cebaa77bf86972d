//! The GPT-2 shape: from a model card (as gpt2_beam.py's `--model_card`) or an HF `config.json`.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// gpt2_beam.py's `--model_card` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCard {
    Small,
    Medium,
    Large,
}

impl std::str::FromStr for ModelCard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gpt2.sm" => Ok(Self::Small),
            "gpt2.md" => Ok(Self::Medium),
            "gpt2.lg" => Ok(Self::Large),
            other => Err(format!("unknown model card `{other}` (expected gpt2.sm, gpt2.md or gpt2.lg)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    #[serde(default = "default_positions")]
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
}

fn default_vocab() -> usize {
    50257
}
fn default_positions() -> usize {
    1024
}
fn default_eps() -> f64 {
    1e-5
}

/// Activation names that mean GPT-2's tanh-approximated GELU, which is what the model computes.
const TANH_GELU_NAMES: [&str; 3] = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

impl Gpt2Config {
    pub fn from_card(card: ModelCard) -> Self {
        let (n_embd, n_layer, n_head) = match card {
            ModelCard::Small => (768, 12, 12),
            ModelCard::Medium => (1024, 24, 16),
            ModelCard::Large => (1280, 36, 20),
        };
        Self {
            vocab_size: default_vocab(),
            n_positions: default_positions(),
            n_embd,
            n_layer,
            n_head,
            layer_norm_epsilon: default_eps(),
        }
    }

    /// Reads an HF-style GPT-2 `config.json`.
    pub fn from_json_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Config { path: path.to_path_buf(), detail: e.to_string() })?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: path.to_path_buf(), detail: e.to_string() })?;
        #[derive(Deserialize)]
        struct Extra {
            activation_function: Option<String>,
            n_positions: Option<usize>,
            n_ctx: Option<usize>,
        }
        let extra: Extra = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: path.to_path_buf(), detail: e.to_string() })?;
        // Old configs give the context size only as `n_ctx`.
        let mut config = config;
        if let (None, Some(n_ctx)) = (extra.n_positions, extra.n_ctx) {
            config.n_positions = n_ctx;
        }
        if let Some(act) = extra.activation_function {
            if !TANH_GELU_NAMES.contains(&act.as_str()) {
                return Err(ModelError::Config {
                    path: path.to_path_buf(),
                    detail: format!("activation_function `{act}` is not GPT-2's tanh GELU"),
                });
            }
        }
        config.check().map_err(|detail| ModelError::Config { path: path.to_path_buf(), detail })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.n_embd == 0 || self.n_layer == 0 || self.n_head == 0 || self.vocab_size == 0 || self.n_positions == 0 {
            return Err("n_embd, n_layer, n_head, vocab_size and n_positions must be positive".into());
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!("n_embd {} is not a multiple of n_head {}", self.n_embd, self.n_head));
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon > 0.0) {
            return Err(format!("layer_norm_epsilon {} must be positive", self.layer_norm_epsilon));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn limits(&self) -> lorabeam_core::ModelLimits {
        lorabeam_core::ModelLimits { vocab_size: self.vocab_size, n_positions: self.n_positions }
    }
}

/// LoRA hyper-parameters, as gpt2_beam.py's `--lora_dim` and `--lora_alpha`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraConfig {
    /// `r`; 0 decodes the base model.
    pub rank: usize,
    pub alpha: f64,
    /// With rank 0: the base was asked for on purpose (`--lora_dim 0` given), so a
    /// checkpoint's LoRA tensors are ignored instead of refused.
    pub base_only: bool,
}

impl LoraConfig {
    /// loralib's `scaling = lora_alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_match_gpt2_beam() {
        let md = Gpt2Config::from_card("gpt2.md".parse().expect("card"));
        assert_eq!((md.n_embd, md.n_layer, md.n_head, md.vocab_size), (1024, 24, 16, 50257));
        assert!("gpt2.xl".parse::<ModelCard>().is_err());
    }

    #[test]
    fn config_json_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"n_embd":64,"n_layer":2,"n_head":4,"n_ctx":256,"activation_function":"gelu_new"}"#)
            .expect("write");
        let config = Gpt2Config::from_json_file(&path).expect("valid config");
        assert_eq!((config.n_positions, config.head_dim(), config.vocab_size), (256, 16, 50257));

        std::fs::write(&path, r#"{"n_embd":64,"n_layer":2,"n_head":5}"#).expect("write");
        let err = Gpt2Config::from_json_file(&path).expect_err("64 % 5 != 0");
        assert!(err.to_string().contains("not a multiple of n_head"), "{err}");

        std::fs::write(&path, r#"{"n_embd":64,"n_layer":2,"n_head":4,"activation_function":"relu"}"#).expect("write");
        assert!(Gpt2Config::from_json_file(&path).is_err());
    }
}
