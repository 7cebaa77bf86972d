//! gpt2_ft.py's LoRA-only checkpoint as an adapter's matrices: loralib's `MergedLinear` on `c_attn`
//! (`enable_lora=[True, False, True]`), so q and v each get a rank-r update and k none. The
//! rank comes from the tensor shapes; loralib stores no alpha, so the caller gives it.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::layout::{check_lora_only, read_tensors};
use super::matrix::{checked_factor, AdaptedMatrix, AdaptedModule, LowRank};
use super::sanity::{check_loralib_alpha, scaling};
use crate::model::weight_names::{canonical_key, KeyRole};
use crate::model::{Gpt2Config, ModelError};

pub(super) fn load(path: &Path, config: &Gpt2Config, alpha: f64) -> Result<Vec<AdaptedMatrix>, ModelError> {
    let tensors = read_tensors(path)?;
    check_lora_only(path, &tensors)?;
    let mut lora = BTreeMap::new();
    for (key, tensor) in tensors {
        if let KeyRole::Tensor(name) = canonical_key(&key) {
            lora.insert(name, tensor);
        }
    }
    let alpha_field = |detail| ModelError::AdapterField { path: path.into(), field: "--lora_alpha".into(), detail };
    check_loralib_alpha(alpha).map_err(alpha_field)?;
    let e = config.n_embd as i64;
    let first = "h.0.attn.c_attn.lora_A";
    let rank = lora
        .get(first)
        .map(|a| a.size().first().copied().unwrap_or(0) / 2)
        .ok_or_else(|| ModelError::MissingTensor { name: first.into(), looked_in: path.display().to_string() })?;
    // Not bounded by n_embd as a PEFT config's `r` is: the rank is the tensors' own, and a
    // rank above it still computes what loralib computes (benches/adapter_stall.rs uses 1024).
    if rank == 0 {
        return Err(ModelError::AdapterFormat { path: path.into(), detail: format!("`{first}` has rank 0") });
    }
    let scaling = scaling(alpha, rank, false).map_err(alpha_field)?;
    let mut matrices = Vec::with_capacity(config.n_layer);
    for layer in 0..config.n_layer {
        let mut take = |suffix: &str, expected: [i64; 2]| -> Result<Tensor, ModelError> {
            let name = format!("h.{layer}.attn.c_attn.{suffix}");
            let tensor = lora.remove(&name).ok_or_else(|| ModelError::MissingTensor {
                name: name.clone(),
                looked_in: path.display().to_string(),
            })?;
            checked_factor(tensor, &name, path, &expected)
        };
        // loralib's grouped conv1d: A is (2r, in), B (2 n_embd, r), q's pair first, then v's.
        let a = take("lora_A", [2 * rank, e])?;
        let b = take("lora_B", [2 * e, rank])?;
        let part = |group: i64, column: i64| -> Result<LowRank, ModelError> {
            Ok(LowRank { column, a: a.f_narrow(0, group * rank, rank)?, b: b.f_narrow(0, group * e, e)? })
        };
        matrices.push(AdaptedMatrix {
            layer,
            module: AdaptedModule::CAttn,
            scaling,
            parts: vec![part(0, 0)?, part(1, 2 * e)?],
        });
    }
    if let Some(extra) = lora.keys().next() {
        return Err(ModelError::AdapterFormat {
            path: path.into(),
            detail: format!("`{extra}` is not a layer of a {}-layer GPT-2 (another base shape?)", config.n_layer),
        });
    }
    Ok(matrices)
}
