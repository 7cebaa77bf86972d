//! Builds the model's weights from checkpoint files: canonical names, shape and dtype checks,
//! base + LoRA-only assembly, and the LoRA merge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::adapter::check_lora_merge;
use super::lora::merge_lora_into_c_attn;
use super::weight_names::{canonical_key, is_lora, KeyRole};
use super::{Gpt2Config, LoraConfig, ModelError, Precision};
use crate::checkpoint::load_state_dict;

/// `y = x @ weight + bias`, with `weight` stored `(in, out)` as GPT-2's Conv1D keeps it.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

pub struct BlockWeights {
    pub ln_1: LayerNorm,
    /// `c_attn` with LoRA already merged in.
    pub c_attn: Linear,
    pub attn_proj: Linear,
    pub ln_2: LayerNorm,
    pub c_fc: Linear,
    pub mlp_proj: Linear,
}

impl BlockWeights {
    /// The Conv1D an adapter's `module` changes.
    pub fn adaptable(&self, module: super::AdaptedModule) -> &Linear {
        match module {
            super::AdaptedModule::CAttn => &self.c_attn,
            super::AdaptedModule::AttnProj => &self.attn_proj,
            super::AdaptedModule::CFc => &self.c_fc,
            super::AdaptedModule::MlpProj => &self.mlp_proj,
        }
    }
}

pub struct Gpt2Weights {
    pub wte: Tensor,
    pub wpe: Tensor,
    pub blocks: Vec<BlockWeights>,
    pub ln_f: LayerNorm,
    /// The first LoRA tensor merged into these weights, and its file: the model is a fine-tuned
    /// one, not a bare base (`None` for a base).
    pub merged_lora: Option<(String, PathBuf)>,
}

/// Where the weights come from.
#[derive(Debug, Clone, Default)]
pub struct CheckpointPaths {
    /// gpt2_ft.py's checkpoint (full, or LoRA-only with `base`), or any base model.
    pub init: Option<PathBuf>,
    /// A pretrained base (`pytorch_model.bin` or `model.safetensors`) under `init`.
    pub base: Option<PathBuf>,
}

/// A canonical tensor and the file it came from.
struct Found {
    tensor: Tensor,
    path: PathBuf,
}

struct Assembled {
    tensors: BTreeMap<String, Found>,
    looked_in: String,
}

impl Assembled {
    /// Takes a tensor, checking its dtype, shape and values, and casts it for merging (f64).
    fn take(&mut self, name: &str, expected: &[i64]) -> Result<(Tensor, PathBuf), ModelError> {
        let found = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor { name: name.to_string(), looked_in: self.looked_in.clone() })?;
        let Found { tensor, path } = found;
        if !matches!(tensor.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
            return Err(ModelError::WrongDtype { name: name.into(), path, found: format!("{:?}", tensor.kind()) });
        }
        if tensor.size() != expected {
            return Err(ModelError::ShapeMismatch {
                name: name.into(),
                path,
                expected: expected.to_vec(),
                found: tensor.size(),
            });
        }
        let tensor = tensor.f_to_kind(Kind::Double)?;
        if !bool::try_from(tensor.f_isfinite()?.f_all()?)? {
            return Err(ModelError::NonFinite { name: name.into(), path });
        }
        Ok((tensor, path))
    }

    fn placed(&mut self, name: &str, shape: &[i64], to: Placement) -> Result<Tensor, ModelError> {
        to.place(self.take(name, shape)?.0)
    }

    fn layer_norm(&mut self, prefix: &str, n_embd: i64, to: Placement) -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm {
            weight: self.placed(&format!("{prefix}.weight"), &[n_embd], to)?,
            bias: self.placed(&format!("{prefix}.bias"), &[n_embd], to)?,
        })
    }

    fn linear(&mut self, prefix: &str, n_in: i64, n_out: i64, to: Placement) -> Result<Linear, ModelError> {
        Ok(Linear {
            weight: self.placed(&format!("{prefix}.weight"), &[n_in, n_out], to)?,
            bias: self.placed(&format!("{prefix}.bias"), &[n_out], to)?,
        })
    }
}

/// The dtype and device every weight ends up in.
#[derive(Clone, Copy)]
struct Placement {
    kind: Kind,
    device: Device,
}

impl Placement {
    fn place(self, tensor: Tensor) -> Result<Tensor, ModelError> {
        Ok(tensor.f_to_kind(self.kind)?.f_to_device(self.device)?)
    }
}

fn canonicalize(tensors: impl IntoIterator<Item = (String, Tensor)>, path: &Path, into: &mut BTreeMap<String, Found>) {
    for (key, tensor) in tensors {
        if let KeyRole::Tensor(name) = canonical_key(&key) {
            into.insert(name, Found { tensor, path: path.to_path_buf() });
        }
    }
}

fn read_canonical(path: &Path, into: &mut BTreeMap<String, Found>) -> Result<(), ModelError> {
    canonicalize(load_state_dict(path)?.tensors, path, into);
    Ok(())
}

/// Builds weights from tensors already in memory (any supported naming), as if read from a
/// single full checkpoint: for tests and benchmarks.
pub fn weights_from_tensors(
    config: &Gpt2Config,
    lora: LoraConfig,
    tensors: Vec<(String, Tensor)>,
    precision: Precision,
    device: Device,
) -> Result<Gpt2Weights, ModelError> {
    let mut found = BTreeMap::new();
    let origin = Path::new("<memory>");
    canonicalize(tensors, origin, &mut found);
    assemble(config, lora, Assembled { tensors: found, looked_in: origin.display().to_string() }, precision, device)
}

/// Loads, checks and merges the weights, then moves them to `precision` on `device`.
pub fn load_weights(
    config: &Gpt2Config,
    lora: LoraConfig,
    paths: &CheckpointPaths,
    precision: Precision,
    device: Device,
) -> Result<Gpt2Weights, ModelError> {
    let mut tensors = BTreeMap::new();
    let mut looked_in = Vec::new();
    if let Some(base) = &paths.base {
        read_canonical(base, &mut tensors)?;
        looked_in.push(base.display().to_string());
    }
    if let Some(init) = &paths.init {
        let mut from_init = BTreeMap::new();
        read_canonical(init, &mut from_init)?;
        let lora_only = !from_init.is_empty() && from_init.keys().all(|k| is_lora(k));
        if lora_only && paths.base.is_none() {
            return Err(ModelError::LoraOnlyWithoutBase { path: init.clone() });
        }
        tensors.extend(from_init);
        looked_in.push(init.display().to_string());
    }
    if looked_in.is_empty() {
        return Err(ModelError::NoCheckpoint);
    }
    let found = Assembled { tensors, looked_in: looked_in.join(" and ") };
    assemble(config, lora, found, precision, device)
}

/// Checks, merges and places every tensor the model needs.
fn assemble(
    config: &Gpt2Config,
    lora: LoraConfig,
    mut found: Assembled,
    precision: Precision,
    device: Device,
) -> Result<Gpt2Weights, ModelError> {
    let (e, v, p) = (config.n_embd as i64, config.vocab_size as i64, config.n_positions as i64);
    let to = Placement { kind: precision.kind(), device };
    let wte = found.placed("wte.weight", &[v, e], to)?;
    let wpe = found.placed("wpe.weight", &[p, e], to)?;
    let ln_f = found.layer_norm("ln_f", e, to)?;
    let mut blocks = Vec::with_capacity(config.n_layer);
    let mut merged_lora = None;
    for i in 0..config.n_layer {
        let h = format!("h.{i}");
        let mut c_attn_weight = found.take(&format!("{h}.attn.c_attn.weight"), &[e, 3 * e])?.0;
        if lora.rank > 0 {
            let r = lora.rank as i64;
            let a_name = format!("{h}.attn.c_attn.lora_A");
            let b_name = format!("{h}.attn.c_attn.lora_B");
            // lora_A is (2r, n_embd) and lora_B (2 n_embd, r): q and v each get an update.
            let explain = |name: &str, rank_axis: usize, err| match err {
                ModelError::MissingTensor { .. } => ModelError::LoraMissing { name: name.into(), rank: lora.rank },
                ModelError::ShapeMismatch { name, path, found, .. } => {
                    let in_file = found.get(rank_axis).map_or(0, |&n| if rank_axis == 0 { n / 2 } else { n });
                    ModelError::LoraRankMismatch { given: lora.rank, in_file, name, path, found }
                }
                other => other,
            };
            let (lora_a, a_path) = found.take(&a_name, &[2 * r, e]).map_err(|err| explain(&a_name, 0, err))?;
            let lora_b = found.take(&b_name, &[2 * e, r]).map_err(|err| explain(&b_name, 1, err))?.0;
            check_lora_merge(&a_path, i, &lora_a, &lora_b, lora.alpha)?;
            merged_lora.get_or_insert((a_name.clone(), a_path));
            c_attn_weight = merge_lora_into_c_attn(&c_attn_weight, &lora_a, &lora_b, lora.scaling())?;
        }
        blocks.push(BlockWeights {
            ln_1: found.layer_norm(&format!("{h}.ln_1"), e, to)?,
            c_attn: Linear {
                weight: to.place(c_attn_weight)?,
                bias: found.placed(&format!("{h}.attn.c_attn.bias"), &[3 * e], to)?,
            },
            attn_proj: found.linear(&format!("{h}.attn.c_proj"), e, e, to)?,
            ln_2: found.layer_norm(&format!("{h}.ln_2"), e, to)?,
            c_fc: found.linear(&format!("{h}.mlp.c_fc"), e, 4 * e, to)?,
            mlp_proj: found.linear(&format!("{h}.mlp.c_proj"), 4 * e, e, to)?,
        });
    }
    let leftovers: Vec<&String> = found.tensors.keys().collect();
    if lora.rank == 0 {
        let lora_a = found.tensors.iter().find(|(k, _)| k.ends_with(".lora_A"));
        if let Some((name, Found { tensor, path })) = lora_a {
            let in_file = tensor.size().first().map_or(0, |&n| n / 2);
            if !lora.base_only {
                return Err(ModelError::LoraNotRequested { in_file, name: name.clone(), path: path.clone() });
            }
            tracing::warn!(
                checkpoint_rank = in_file,
                "--lora_dim 0: the checkpoint's LoRA tensors are ignored, decoding the base model"
            );
        }
    }
    let unknown: Vec<&&String> = leftovers.iter().filter(|k| !is_lora(k)).collect();
    if !unknown.is_empty() {
        tracing::warn!(count = unknown.len(), first = %unknown[0], "ignoring tensors GPT-2 does not use");
    }
    Ok(Gpt2Weights { wte, wpe, blocks, ln_f, merged_lora })
}
