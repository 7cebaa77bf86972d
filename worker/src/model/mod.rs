//! The LoRA GPT-2 model: its shape, its weights (with LoRA merged in), adapters on a shared
//! base, and its forward pass.

pub mod adapter;
mod batch_kv;
mod config;
mod error;
mod gpt2;
mod kv_cache;
mod kv_pool;
mod layers;
mod lora;
mod shape_hint;
mod synthetic;
mod weight_names;
mod weights;

pub use adapter::{AdaptedMatrix, AdaptedModule, Adapter, AdapterMath, AdapterWeights, LowRank, PrepareTarget};
pub use batch_kv::{AttentionPath, BatchKv, ItemKv};
pub use config::{Gpt2Config, LoraConfig, ModelCard};
pub use error::ModelError;
pub use gpt2::Gpt2;
pub use kv_cache::{GroupCache, LayerKv};
pub use kv_pool::{KvPool, PooledItem};
pub use shape_hint::explain_card_mismatch;
pub use synthetic::{config_json, hold_seeded_rng, random_adapter, seeded, synthetic_checkpoint};
pub use weights::{load_weights, weights_from_tensors, CheckpointPaths, Gpt2Weights};

/// Numeric precision the model runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
    Bf16,
    F16,
}

impl Precision {
    pub fn kind(self) -> tch::Kind {
        match self {
            Self::F32 => tch::Kind::Float,
            Self::F64 => tch::Kind::Double,
            Self::Bf16 => tch::Kind::BFloat16,
            Self::F16 => tch::Kind::Half,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Self::F64 => 8,
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }

    /// The dtype beam scores are computed in: the model's own for f32/f64 (as the reference
    /// does), f32 for the half types, whose softmax would lose the ranking.
    pub fn score_kind(self) -> tch::Kind {
        match self {
            Self::F64 => tch::Kind::Double,
            _ => tch::Kind::Float,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(Self::F32),
            "f64" | "float64" => Ok(Self::F64),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" => Ok(Self::F16),
            other => Err(format!("unknown dtype `{other}` (expected f32, f64, bf16 or f16)")),
        }
    }
}

/// Parses `--device`: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
pub fn parse_device(spec: &str) -> Result<tch::Device, ModelError> {
    let unavailable = || ModelError::DeviceUnavailable { device: spec.to_string() };
    match spec {
        "cpu" => Ok(tch::Device::Cpu),
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cuda" => tch::Cuda::is_available().then_some(tch::Device::Cuda(0)).ok_or_else(unavailable),
        _ => {
            let index = spec
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ModelError::UnknownDevice { device: spec.to_string() })?;
            if index < tch::Cuda::device_count() as usize {
                Ok(tch::Device::Cuda(index))
            } else {
                Err(unavailable())
            }
        }
    }
}
