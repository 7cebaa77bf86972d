//! An HF PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors` or
//! `adapter_model.bin`) as an adapter's matrices: the config read within `MAX_CONFIG_BYTES` and
//! checked by `peft_config`, then each targeted module's factors.
//!
//! peft turns `fan_in_fan_out` on for every Conv1D, so GPT-2's factors are always `A (r, in)`,
//! `B (out, r)` and the update `(B A)^T`, whatever the flag says.

use std::io::Read;
use std::path::Path;

use super::matrix::{checked_factor, AdaptedMatrix, LowRank};
use super::peft_config::module_settings;
use super::sanity::MAX_CONFIG_BYTES;
use crate::checkpoint::load_state_dict;
use crate::model::{Gpt2Config, ModelError};

/// The config's name in a PEFT adapter's folder.
pub const CONFIG_FILE: &str = "adapter_config.json";

/// The weights' names in a PEFT adapter's folder, in the order they are looked for.
pub const WEIGHTS_FILES: [&str; 2] = ["adapter_model.safetensors", "adapter_model.bin"];

/// Every file of a PEFT adapter's folder that decides what it computes: the config, then the
/// weights in the order they are looked for.
pub const FILES: [&str; 3] = [CONFIG_FILE, WEIGHTS_FILES[0], WEIGHTS_FILES[1]];

pub(super) fn load(dir: &Path, config: &Gpt2Config) -> Result<Vec<AdaptedMatrix>, ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    let settings = module_settings(&read_bounded(&config_path)?, &config_path, config)?;
    let weights_path =
        WEIGHTS_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()).ok_or_else(|| ModelError::AdapterFormat {
            path: dir.into(),
            detail: "holds neither adapter_model.safetensors nor adapter_model.bin".into(),
        })?;
    let mut tensors = load_state_dict(&weights_path)?.tensors;
    let e = config.n_embd as i64;
    let mut matrices = Vec::with_capacity(settings.len());
    for setting in settings {
        let (n_in, n_out) = setting.module.shape(e);
        let mut take = |factor: &str, expected: [i64; 2]| -> Result<_, ModelError> {
            let name = format!("base_model.model.{}.{factor}.weight", setting.key);
            let tensor = tensors.remove(&name).ok_or_else(|| ModelError::MissingTensor {
                name: name.clone(),
                looked_in: weights_path.display().to_string(),
            })?;
            checked_factor(tensor, &name, &weights_path, &expected)
        };
        let a = take("lora_A", [setting.r, n_in])?;
        let b = take("lora_B", [n_out, setting.r])?;
        let parts = vec![LowRank { column: 0, a, b }];
        matrices.push(AdaptedMatrix { layer: setting.layer, module: setting.module, scaling: setting.scaling, parts });
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

/// The whole of a regular file of at most `MAX_CONFIG_BYTES`; a larger one is refused by its
/// size without reading it (and one that grows while read, at the limit).
fn read_bounded(path: &Path) -> Result<Vec<u8>, ModelError> {
    let format = |detail: String| ModelError::AdapterFormat { path: path.into(), detail };
    let too_large = |size| ModelError::AdapterConfigTooLarge { path: path.into(), size, limit: MAX_CONFIG_BYTES };
    let metadata = std::fs::metadata(path).map_err(|e| format(e.to_string()))?;
    if !metadata.is_file() {
        return Err(format("is not a regular file".into()));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(too_large(metadata.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| format(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_over_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CONFIG_FILE);
        // A sparse 1 GiB file: refused by its size, not read.
        std::fs::File::create(&path).and_then(|f| f.set_len(1 << 30)).expect("sparse file");
        let err = read_bounded(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("adapter_config.json is 1073741824 bytes, more than the 1048576"), "{err}");
        std::fs::File::create(&path).and_then(|f| f.set_len(MAX_CONFIG_BYTES)).expect("file at the limit");
        assert_eq!(read_bounded(&path).map(|b| b.len() as u64).ok(), Some(MAX_CONFIG_BYTES));
        let err = read_bounded(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is not a regular file"), "{err}");
    }
}
