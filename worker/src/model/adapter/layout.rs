//! What a path given as an adapter holds when it is not one, and what to pass instead: a PEFT
//! adapter's weights file given without its folder, a folder without `adapter_config.json` (the
//! config missing, or a Hugging Face model), a full gpt2_ft.py checkpoint, a bare base, an empty
//! file or folder, a file of another format.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::peft::{CONFIG_FILE, WEIGHTS_FILES};
use crate::checkpoint::{load_state_dict, CheckpointError};
use crate::model::weight_names::{canonical_key, is_lora, KeyRole};
use crate::model::ModelError;

/// What a checkpoint file given as an adapter holds, by its tensors' names.
#[derive(Debug, PartialEq)]
pub(super) enum FileLayout {
    /// gpt2_ft.py's LoRA-only checkpoint: a loralib adapter.
    LoraOnly,
    /// PEFT-named LoRA factors (`base_model.model.….lora_A.weight`): a PEFT adapter's weights.
    PeftWeights,
    /// GPT-2's weights and LoRA factors: gpt2_ft.py's full checkpoint, with its LoRA rank.
    Full { rank: Option<i64> },
    /// GPT-2's weights and no LoRA: a base model.
    Base { first: String, count: usize },
    /// No tensors, or only buffers lorabeam ignores (causal masks, a tied `lm_head`).
    NoTensors,
    /// A tensor that is neither LoRA nor GPT-2's.
    Other { first: String },
}

/// Whether a canonical name is one of GPT-2's own weights (`wte.weight`, `h.3.mlp.c_fc.bias`).
fn is_gpt2_weight(name: &str) -> bool {
    if ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"].contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("h.") else { return false };
    let Some((layer, rest)) = rest.split_once('.') else { return false };
    let parts = ["ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];
    let known = |part: &str| parts.iter().any(|p| part == format!("{p}.weight") || part == format!("{p}.bias"));
    !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit()) && known(rest)
}

/// Sorts a checkpoint's tensors into a layout.
pub(super) fn classify(tensors: &BTreeMap<String, Tensor>) -> FileLayout {
    let (mut peft, mut lora, mut base, mut other) = (0, 0, Vec::new(), None);
    for key in tensors.keys() {
        if key.starts_with("base_model.model.") {
            peft += 1;
            continue;
        }
        let KeyRole::Tensor(name) = canonical_key(key) else { continue };
        if is_lora(&name) {
            lora += 1;
        } else if is_gpt2_weight(&name) {
            base.push(name);
        } else if other.is_none() {
            other = Some(key.clone());
        }
    }
    let rank = || {
        let a = tensors.iter().find(|(k, _)| canonical_key(k) == KeyRole::Tensor("h.0.attn.c_attn.lora_A".into()));
        a.and_then(|(_, t)| t.size().first().map(|rows| rows / 2))
    };
    match (peft, lora, base.first(), other) {
        (0, 0, None, None) => FileLayout::NoTensors,
        (1.., 0, None, None) => FileLayout::PeftWeights,
        (0, 1.., Some(_), _) => FileLayout::Full { rank: rank() },
        (0, 1.., None, None) => FileLayout::LoraOnly,
        (0, 0, Some(first), None) => FileLayout::Base { first: first.clone(), count: base.len() },
        (_, _, _, Some(first)) => FileLayout::Other { first },
        // PEFT names beside loralib's or GPT-2's.
        _ => FileLayout::Other {
            first: tensors.keys().find(|k| k.starts_with("base_model.")).cloned().unwrap_or_default(),
        },
    }
}

/// Refuses a checkpoint file (`tensors`, read from `path`) given as a loralib adapter unless
/// it is one, saying what it is instead.
pub(super) fn check_lora_only(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<(), ModelError> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let detail = match classify(tensors) {
        FileLayout::LoraOnly => return Ok(()),
        FileLayout::PeftWeights if folder.join(CONFIG_FILE).is_file() => format!(
            "is a PEFT adapter's weights file; pass its folder {} (which holds {CONFIG_FILE})",
            folder.display()
        ),
        FileLayout::PeftWeights => format!(
            "is a PEFT adapter's weights file; pass the folder peft saved it in, with its {CONFIG_FILE} ({} has none)",
            folder.display()
        ),
        FileLayout::Full { rank } => {
            let rank = rank.map_or("R (its LoRA rank)".into(), |r| r.to_string());
            format!(
                "is a full gpt2_ft.py checkpoint (GPT-2's weights and its LoRA), not a LoRA-only adapter; decode it \
                 with --init_checkpoint {} --lora_dim {rank}",
                path.display()
            )
        }
        FileLayout::Base { first, count } => format!(
            "holds GPT-2's weights (`{first}` and {} more) and no LoRA: a base model, not an adapter; pass it with \
             --base_checkpoint",
            count - 1
        ),
        FileLayout::NoTensors => "holds no tensors lorabeam reads (no LoRA factor, no GPT-2 weight)".into(),
        FileLayout::Other { first } => {
            format!("holds `{first}`, which is neither a LoRA factor nor a GPT-2 weight: not an adapter lorabeam reads")
        }
    };
    Err(ModelError::AdapterLayout { path: path.into(), detail })
}

/// Every tensor of a file given as an adapter, refusing an empty file and one of another
/// format (a PEFT config given for its folder, with its own message).
pub(super) fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let layout = |detail: String| ModelError::AdapterLayout { path: path.into(), detail };
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(layout("is an empty file".into()));
    }
    match load_state_dict(path) {
        Ok(dict) => Ok(dict.tensors),
        Err(CheckpointError::UnknownFormat { .. }) if path.file_name().is_some_and(|n| n == CONFIG_FILE) => {
            let folder = path.parent().unwrap_or(Path::new("."));
            Err(layout(format!("is a PEFT adapter's config; pass its folder {}", folder.display())))
        }
        Err(CheckpointError::UnknownFormat { .. }) => Err(layout(
            "is neither a torch.save archive nor a safetensors file: an adapter is a PEFT folder \
             (adapter_config.json + adapter_model.safetensors or .bin) or gpt2_ft.py's LoRA-only .pt"
                .into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The error for a folder without `adapter_config.json`: empty, a PEFT adapter's weights
/// without their config, a Hugging Face model, or something else.
pub(super) fn folder_error(dir: &Path) -> ModelError {
    let has = |name: &str| dir.join(name).is_file();
    let empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    let model = ["model.safetensors", "pytorch_model.bin"].into_iter().find(|w| has(w));
    let peft_folder = "a PEFT adapter's folder holds adapter_config.json and adapter_model.safetensors (or .bin)";
    let detail = if empty {
        format!("is an empty folder; {peft_folder}")
    } else if let Some(weights) = WEIGHTS_FILES.into_iter().find(|w| has(w)) {
        format!(
            "holds {weights} but no {CONFIG_FILE}: the PEFT adapter's config is missing (peft's save_pretrained writes \
             both)"
        )
    } else if let (true, Some(weights)) = (has("config.json"), model) {
        format!(
            "is a Hugging Face model folder (config.json, {weights}): a full model, not an adapter; pass {} with \
             --base_checkpoint (or --init_checkpoint) and its shape with --model_config {}",
            dir.join(weights).display(),
            dir.join("config.json").display()
        )
    } else {
        format!("is a folder without {CONFIG_FILE}; {peft_folder}")
    };
    ModelError::AdapterLayout { path: dir.into(), detail }
}
