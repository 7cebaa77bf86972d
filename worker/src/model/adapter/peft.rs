//! An HF PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors` or
//! `adapter_model.bin`) as an adapter's matrices, with peft 0.21's matching rules: `target_modules` as a
//! list matches a module named exactly so or ending in `.name`, as a string it is a regex that
//! must match the whole module name; `rank_pattern` / `alpha_pattern` keys match the end of a
//! name after a dot (`(.*\.)?(KEY)$`), the first key in file order winning; `exclude_modules`
//! likewise. Module names are GPT2LMHeadModel's (`transformer.h.3.mlp.c_fc`).
//!
//! peft turns `fan_in_fan_out` on for every Conv1D, so GPT-2's factors are always `A (r, in)`,
//! `B (out, r)` and the update `(B A)^T`, whatever the flag says.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::matrix::{checked_factor, AdaptedMatrix, AdaptedModule, LowRank};
use super::targets::{Ordered, Targets};
use crate::checkpoint::load_state_dict;
use crate::model::{Gpt2Config, ModelError};

/// What lorabeam reads of `adapter_config.json`; other fields do not change inference.
#[derive(Deserialize)]
struct PeftConfig {
    peft_type: Option<String>,
    #[serde(default = "default_r")]
    r: i64,
    #[serde(default = "default_alpha")]
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    rank_pattern: Ordered<i64>,
    #[serde(default)]
    alpha_pattern: Ordered<f64>,
    target_modules: Option<Targets>,
    exclude_modules: Option<Targets>,
    bias: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

fn default_r() -> i64 {
    8
}
fn default_alpha() -> f64 {
    8.0
}

/// Options that change what the adapter computes and that lorabeam does not implement: each
/// must be absent, null, false or empty.
const UNSUPPORTED: [&str; 8] = [
    "use_dora",
    "modules_to_save",
    "layers_to_transform",
    "lora_bias",
    "target_parameters",
    "layer_replication",
    "trainable_token_indices",
    "alora_invocation_tokens",
];

pub(super) fn load(dir: &Path, config: &Gpt2Config) -> Result<Vec<AdaptedMatrix>, ModelError> {
    let config_path = dir.join("adapter_config.json");
    let field = |field: &str, detail: String| ModelError::AdapterField {
        path: config_path.clone(),
        field: field.into(),
        detail,
    };
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| ModelError::AdapterFormat { path: config_path.clone(), detail: e.to_string() })?;
    let peft: PeftConfig = serde_json::from_str(&text)
        .map_err(|e| ModelError::AdapterFormat { path: config_path.clone(), detail: e.to_string() })?;
    check_supported(&peft, &field)?;
    let weights_path = ["adapter_model.safetensors", "adapter_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| ModelError::AdapterFormat {
            path: dir.into(),
            detail: "holds neither adapter_model.safetensors nor adapter_model.bin".into(),
        })?;
    let mut tensors = load_state_dict(&weights_path)?.tensors;
    let e = config.n_embd as i64;
    let mut matrices = Vec::new();
    for (layer, module) in matched_modules(&peft, config, &field)? {
        let key = module_key(layer, module);
        let r = peft.rank_pattern.first_match(&key).map_err(|d| field("rank_pattern", d))?.unwrap_or(peft.r);
        let alpha =
            peft.alpha_pattern.first_match(&key).map_err(|d| field("alpha_pattern", d))?.unwrap_or(peft.lora_alpha);
        if r <= 0 {
            return Err(field("r", format!("rank {r} of `{key}` must be positive")));
        }
        let scaling = if peft.use_rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        let (n_in, n_out) = module.shape(e);
        let mut take = |factor: &str, expected: [i64; 2]| -> Result<_, ModelError> {
            let name = format!("base_model.model.{key}.{factor}.weight");
            let tensor = tensors.remove(&name).ok_or_else(|| ModelError::MissingTensor {
                name: name.clone(),
                looked_in: weights_path.display().to_string(),
            })?;
            checked_factor(tensor, &name, &weights_path, &expected)
        };
        let a = take("lora_A", [r, n_in])?;
        let b = take("lora_B", [n_out, r])?;
        matrices.push(AdaptedMatrix { layer, module, scaling, parts: vec![LowRank { column: 0, a, b }] });
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(ModelError::AdapterFormat {
            path: weights_path.clone(),
            detail: format!(
                "tensor `{extra}` belongs to no module the config targets in a {}-layer GPT-2 (another base shape, \
                 or an option lorabeam does not apply)",
                config.n_layer
            ),
        });
    }
    Ok(matrices)
}

fn check_supported(peft: &PeftConfig, field: &dyn Fn(&str, String) -> ModelError) -> Result<(), ModelError> {
    if let Some(kind) = peft.peft_type.as_deref().filter(|t| *t != "LORA") {
        return Err(field("peft_type", format!("`{kind}` is not a LoRA adapter (expected LORA)")));
    }
    if let Some(bias) = peft.bias.as_deref().filter(|b| *b != "none") {
        return Err(field("bias", format!("`{bias}` trains biases, which lorabeam does not apply (expected none)")));
    }
    for name in UNSUPPORTED {
        let set = match peft.rest.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        };
        if set {
            let value = peft.rest.get(name).map(Value::to_string).unwrap_or_default();
            return Err(field(name, format!("is set ({value}), which lorabeam does not support")));
        }
    }
    if !(peft.lora_alpha.is_finite()) {
        return Err(field("lora_alpha", format!("{} is not a number", peft.lora_alpha)));
    }
    Ok(())
}

/// peft's name for a block module.
fn module_key(layer: usize, module: AdaptedModule) -> String {
    format!("transformer.h.{layer}.{}", module.name())
}

/// Every module name of a GPT2LMHeadModel with `layers` blocks, with what lorabeam can adapt.
fn gpt2_modules(layers: usize) -> Vec<(String, Option<(usize, AdaptedModule)>)> {
    let mut names: Vec<(String, Option<(usize, AdaptedModule)>)> =
        ["transformer", "transformer.wte", "transformer.wpe", "transformer.drop", "transformer.h"]
            .iter()
            .map(|n| (n.to_string(), None))
            .collect();
    for layer in 0..layers {
        let block = format!("transformer.h.{layer}");
        names.push((block.clone(), None));
        for part in ["ln_1", "attn", "attn.attn_dropout", "attn.resid_dropout", "ln_2", "mlp", "mlp.act", "mlp.dropout"]
        {
            names.push((format!("{block}.{part}"), None));
        }
        names.extend(AdaptedModule::ALL.iter().map(|&m| (module_key(layer, m), Some((layer, m)))));
    }
    names.extend(["transformer.ln_f", "lm_head"].iter().map(|n| (n.to_string(), None)));
    names
}

/// The modules the config targets, in peft's matching, refusing any lorabeam cannot adapt and
/// any listed target GPT-2 does not have.
fn matched_modules(
    peft: &PeftConfig,
    config: &Gpt2Config,
    field: &dyn Fn(&str, String) -> ModelError,
) -> Result<Vec<(usize, AdaptedModule)>, ModelError> {
    // peft's default targets for GPT-2 when the config names none.
    let default = Targets::List(vec!["c_attn".into()]);
    let targets = peft.target_modules.as_ref().unwrap_or(&default);
    let target_regex = targets.compile().map_err(|d| field("target_modules", d))?;
    let exclude_regex = match &peft.exclude_modules {
        Some(ex) => ex.compile().map_err(|d| field("exclude_modules", d))?,
        None => None,
    };
    let mut matched = Vec::new();
    let mut used = vec![false; targets.len()];
    for (key, adaptable) in gpt2_modules(config.n_layer) {
        if let Some(exclude) = &peft.exclude_modules {
            if exclude.matches(&key, exclude_regex.as_ref()).is_some() {
                continue;
            }
        }
        let Some(which) = targets.matches(&key, target_regex.as_ref()) else { continue };
        if let Some(slot) = used.get_mut(which) {
            *slot = true;
        }
        match adaptable {
            Some(found) => matched.push(found),
            None => {
                return Err(field(
                    "target_modules",
                    format!(
                        "matches `{key}`, which lorabeam cannot adapt (only c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)"
                    ),
                ))
            }
        }
    }
    if let Targets::List(list) = targets {
        if let Some((name, _)) = list.iter().zip(&used).find(|(_, used)| !**used) {
            return Err(field("target_modules", format!("`{name}` is not a module of GPT-2")));
        }
    }
    if matched.is_empty() {
        return Err(field("target_modules", "matches no module of GPT-2".into()));
    }
    Ok(matched)
}
