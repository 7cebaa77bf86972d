//! The model flags of every command that loads a model (`lorabeam run`, `lorabeam-worker`):
//! gpt2_beam.py's names and defaults, plus lorabeam's own.

use std::path::PathBuf;

use clap::Args;

use crate::model::{AdapterMath, AttentionPath, CheckpointPaths, LoraConfig, ModelCard, Precision};
use crate::model_files::{resolve_spec, ObjectFiles};
use crate::ModelSpec;

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Checkpoint to decode: gpt2_ft.py's (full or LoRA-only), or a pretrained GPT-2. A path, or
    /// an object's URL (s3://, gs://, az://), fetched once into --object-cache-dir.
    #[arg(long = "init_checkpoint", env = "LORABEAM_INIT_CHECKPOINT")]
    pub init_checkpoint: Option<PathBuf>,
    /// Pretrained base under a LoRA-only checkpoint: `pytorch_model.bin` or `model.safetensors`.
    /// A path or an object's URL, as --init_checkpoint.
    #[arg(long = "base_checkpoint", env = "LORABEAM_BASE_CHECKPOINT")]
    pub base_checkpoint: Option<PathBuf>,
    /// Model shape: gpt2.sm, gpt2.md or gpt2.lg (ignored when --model_config is given).
    #[arg(long = "model_card", env = "LORABEAM_MODEL_CARD", default_value = "gpt2.sm")]
    pub model_card: ModelCard,
    /// HF-style GPT-2 `config.json` giving the model shape (a path or an object's URL).
    #[arg(long = "model_config", env = "LORABEAM_MODEL_CONFIG")]
    pub model_config: Option<PathBuf>,
    /// LoRA rank r, as the checkpoint was trained with. Not given: the base model, refused when
    /// the checkpoint holds LoRA tensors; 0: the base model on purpose, LoRA tensors ignored.
    #[arg(long = "lora_dim", env = "LORABEAM_LORA_DIM")]
    pub lora_dim: Option<usize>,
    /// LoRA alpha; the update is scaled by lora_alpha / lora_dim.
    #[arg(long = "lora_alpha", env = "LORABEAM_LORA_ALPHA", default_value_t = 128.0)]
    pub lora_alpha: f64,
    /// Precision of the model: f32, f64, bf16 or f16 (half types score beams in f32).
    #[arg(long, env = "LORABEAM_DTYPE", default_value = "f32")]
    pub dtype: Precision,
    /// Device: cpu, cuda, cuda:N, N (as gpu.py's --device, cuda:N), or auto (CUDA when
    /// available).
    #[arg(long, env = "LORABEAM_DEVICE", default_value = "auto", value_parser = device_flag)]
    pub device: String,
    /// CPU threads for libtorch's intra-op parallelism; 0: the CPUs this process may use
    /// (its affinity mask, lowered by a cgroup CPU quota), not every CPU of the machine.
    #[arg(long, env = "LORABEAM_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Attention path: `batched` (a fixed number of tensor operations per layer for the whole
    /// running batch) or `per-group` (one loop pass per item; kept for comparison).
    #[arg(long, env = "LORABEAM_ATTENTION", default_value = "batched")]
    pub attention: AttentionPath,
    /// How rows decoding with an adapter (--adapter, --adapter-dir) are multiplied: `low-rank`
    /// (one base matmul for every row plus each adapter's update on its rows; mixing adapters
    /// in a batch costs little) or `merged` (a merged copy of each adapted matrix per adapter:
    /// bit for bit a merged model, but each adapter's rows take their own matmul).
    #[arg(long, env = "LORABEAM_ADAPTER_MATH", default_value = "low-rank")]
    pub adapter_math: AdapterMath,
    /// Folder of the local copies of objects named by URL (checkpoints, config, adapters),
    /// kept across runs by URL and ETag: a changed object is fetched again. Default:
    /// `$XDG_CACHE_HOME/lorabeam/objects`, else `~/.cache/lorabeam/objects`.
    #[arg(long = "object-cache-dir", env = "LORABEAM_OBJECT_CACHE_DIR")]
    pub object_cache_dir: Option<PathBuf>,
    /// MiB the object cache may hold; the least recently used copies go past it (never one a
    /// run is using).
    #[arg(long = "object-cache-mib", env = "LORABEAM_OBJECT_CACHE_MIB", default_value_t = 20480,
        value_parser = clap::value_parser!(u64).range(1..(1 << 44)))]
    pub object_cache_mib: u64,
}

impl ModelArgs {
    /// The object cache these flags give; `say` reports each fetch.
    pub fn object_files(&self, say: fn(&str)) -> ObjectFiles {
        ObjectFiles::new(self.object_cache_dir.clone(), self.object_cache_mib << 20, say)
    }

    /// [`Self::spec`] with every file named by URL fetched into the object cache and named by
    /// its local copy.
    pub async fn resolved_spec(&self, files: &ObjectFiles) -> anyhow::Result<ModelSpec> {
        resolve_spec(self.spec(), files).await
    }

    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            checkpoints: CheckpointPaths { init: self.init_checkpoint.clone(), base: self.base_checkpoint.clone() },
            model_card: self.model_card,
            model_config: self.model_config.clone(),
            lora: LoraConfig {
                rank: self.lora_dim.unwrap_or(0),
                alpha: self.lora_alpha,
                base_only: self.lora_dim == Some(0),
            },
            precision: self.dtype,
            device: self.device.clone(),
            threads: self.threads,
            attention: self.attention,
            adapter_math: self.adapter_math,
        }
    }
}

/// `--device N`, gpu.py's GPU index, is `cuda:N`; other values pass through to the device parser.
fn device_flag(value: &str) -> Result<String, std::convert::Infallible> {
    let index = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    Ok(if index { format!("cuda:{value}") } else { value.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_integer_device_is_that_cuda_device() {
        assert_eq!(super::device_flag("1").ok().as_deref(), Some("cuda:1"));
        assert_eq!(super::device_flag("cpu").ok().as_deref(), Some("cpu"));
        assert_eq!(super::device_flag("cuda:0").ok().as_deref(), Some("cuda:0"));
    }
}
