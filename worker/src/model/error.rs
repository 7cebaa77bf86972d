//! Everything that can go wrong while building or running the model.

use std::path::PathBuf;

use crate::checkpoint::{short_torch_error, torch_error_line, CheckpointError};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model config {path}: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("tensor `{name}` is missing (looked in {looked_in})")]
    MissingTensor { name: String, looked_in: String },
    #[error("tensor `{name}` in {path} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, path: PathBuf, expected: Vec<i64>, found: Vec<i64> },
    #[error("tensor `{name}` in {path} has dtype {found}, expected a floating-point dtype")]
    WrongDtype { name: String, path: PathBuf, found: String },
    #[error("tensor `{name}` in {path} holds NaN or infinite values")]
    NonFinite { name: String, path: PathBuf },
    #[error(
        "{path} holds only LoRA tensors (gpt2_ft.py's intermediate checkpoint); pass the pretrained \
         model it was trained from with --base_checkpoint (the reference would silently decode on \
         random base weights)"
    )]
    LoraOnlyWithoutBase { path: PathBuf },
    #[error(
        "--lora_dim {rank} was given but `{name}` is in no checkpoint; pass --lora_dim 0 to decode \
         the base model"
    )]
    LoraMissing { name: String, rank: usize },
    #[error(
        "--lora_dim {given} does not match the checkpoint, whose LoRA is r={in_file} (`{name}` in {path} has \
         shape {found:?}); pass --lora_dim {in_file}"
    )]
    LoraRankMismatch { given: usize, in_file: i64, name: String, path: PathBuf, found: Vec<i64> },
    #[error(
        "{path} holds LoRA tensors of rank r={in_file} (`{name}`), but no --lora_dim was given: pass \
         --lora_dim {in_file} (and its --lora_alpha) to decode the fine-tuned model, or --lora_dim 0 to decode \
         the bare base on purpose"
    )]
    LoraNotRequested { in_file: i64, name: String, path: PathBuf },
    /// `--lora_alpha`, or a LoRA factor in a checkpoint merged at load, beyond the bounds of
    /// `model::adapter` (the same as for adapters): decoding it would give garbage.
    #[error("{path}: {what}: {detail}")]
    LoraBeyondBound { path: PathBuf, what: String, detail: String },
    /// A shape error while the shape came from a model card, with what the checkpoint's shape is.
    #[error("{error}; {hint}")]
    WrongShape { error: Box<ModelError>, hint: String },
    #[error("no checkpoint given: pass --init_checkpoint, --base_checkpoint, or both")]
    NoCheckpoint,
    #[error("device `{device}` is not available on this machine")]
    DeviceUnavailable { device: String },
    #[error("unknown device `{device}` (expected cpu, cuda, cuda:N or auto)")]
    UnknownDevice { device: String },
    #[error("one decode step was given caches of both attention paths (batched and per-group)")]
    MixedAttentionPaths,
    #[error("unknown attention path `{0}` (expected batched or per-group)")]
    UnknownAttention(String),
    #[error("unknown adapter math `{0}` (expected low-rank or merged)")]
    UnknownAdapterMath(String),
    #[error(
        "adapter {path} does not exist (expected a PEFT directory with adapter_config.json, or a \
         loralib LoRA-only .pt file)"
    )]
    AdapterNotFound { path: PathBuf },
    /// A field of an adapter's config that is wrong, or names something lorabeam cannot apply.
    #[error("adapter {path}: `{field}`: {detail}")]
    AdapterField { path: PathBuf, field: String, detail: String },
    #[error("adapter {path}: {detail}")]
    AdapterFormat { path: PathBuf, detail: String },
    #[error("adapter config {path} is {size} bytes, more than the {limit} lorabeam reads (peft writes about 1 KiB)")]
    AdapterConfigTooLarge { path: PathBuf, size: u64, limit: u64 },
    /// A path given as an adapter that holds something else: what it is, and what to pass instead.
    #[error("adapter {path} {detail}")]
    AdapterLayout { path: PathBuf, detail: String },
    /// An adapted matrix whose update `s (B A)` is not finite or too large to be a trained LoRA's.
    #[error(
        "adapter {path}: the update of `{matrix}` (scaling × B·A) has an entry of magnitude {largest:e}, beyond \
         the bound {bound:e}: no trained LoRA comes near it"
    )]
    AdapterUpdate { path: PathBuf, matrix: String, largest: f64, bound: f64 },
    #[error(
        "adapter `{name}` was loaded for a base with n_embd {adapter_embd} and n_layer {adapter_layers}, \
         but the model has n_embd {model_embd} and n_layer {model_layers}"
    )]
    AdapterBaseMismatch {
        name: String,
        adapter_embd: usize,
        adapter_layers: usize,
        model_embd: usize,
        model_layers: usize,
    },
    #[error("{given} adapters were given for {rows} items of a forward pass")]
    AdapterCount { given: usize, rows: usize },
    /// Shown as the first line of libtorch's message only: its C++ backtrace (addresses,
    /// install paths) is for the debug log, not for clients.
    #[error("libtorch: {}", torch_error_line(.0))]
    Torch(tch::TchError),
}

impl From<tch::TchError> for ModelError {
    fn from(e: tch::TchError) -> Self {
        // Logs the full text once, where the error is made, not each time it is shown.
        short_torch_error(&e);
        ModelError::Torch(e)
    }
}
