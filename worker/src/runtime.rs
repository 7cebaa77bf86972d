//! Building a ready-to-run model from the user's flags.

use std::path::PathBuf;

use crate::model::{
    explain_card_mismatch, load_weights, parse_device, AdapterMath, AttentionPath, CheckpointPaths, Gpt2, Gpt2Config,
    LoraConfig, ModelCard, ModelError, Precision,
};

/// Everything that says which model to load and how to run it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub checkpoints: CheckpointPaths,
    pub model_card: ModelCard,
    /// An HF `config.json`; overrides `model_card` when given.
    pub model_config: Option<PathBuf>,
    pub lora: LoraConfig,
    pub precision: Precision,
    pub device: String,
    /// Intra-op CPU threads; 0: the CPUs the process may use ([`crate::process::default_threads`]).
    pub threads: usize,
    pub attention: AttentionPath,
    pub adapter_math: AdapterMath,
}

/// Loads the model a spec describes.
pub fn load_model(spec: &ModelSpec) -> Result<Gpt2, ModelError> {
    let threads = if spec.threads > 0 { spec.threads } else { crate::process::default_threads() };
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
    let config = match &spec.model_config {
        Some(path) => Gpt2Config::from_json_file(path)?,
        None => Gpt2Config::from_card(spec.model_card),
    };
    let device = parse_device(&spec.device)?;
    let weights = load_weights(&config, spec.lora, &spec.checkpoints, spec.precision, device).map_err(|err| {
        if spec.model_config.is_some() {
            err
        } else {
            explain_card_mismatch(err, spec.model_card)
        }
    })?;
    Ok(Gpt2::new(config, weights, spec.precision, device)
        .with_attention(spec.attention)
        .with_adapter_math(spec.adapter_math))
}
