//! One description of a LoRA adapter, whatever format it came in: for each adapted matrix of
//! GPT-2 its low-rank factors and scaling. loralib's `.pt` (`loralib.rs`) and HF PEFT
//! directories (`peft.rs`) load into it.

use std::path::{Path, PathBuf};

use tch::Tensor;

use super::matrix::AdaptedMatrix;
use super::peft::CONFIG_FILE;
use super::sanity::{update_beyond_bound, MAX_UPDATE_ENTRY};
use super::{layout, loralib, peft};
use crate::model::{Gpt2Config, ModelError};

/// A LoRA adapter, checked against the base shape it was loaded for.
pub struct Adapter {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// `(n_embd, n_layer)` of the base it fits.
    pub base_shape: (usize, usize),
    /// At most one per `(layer, module)`, ordered by layer then module.
    pub matrices: Vec<AdaptedMatrix>,
}

impl Adapter {
    /// Loads an adapter for a base of shape `config`: a directory with `adapter_config.json`
    /// is a PEFT adapter; a file is gpt2_ft.py's LoRA-only checkpoint, whose alpha loralib
    /// does not store (`loralib_alpha`, the `--lora_alpha` it was trained with). Anything else
    /// is refused saying what it is; so is an update no trained LoRA would make (`sanity`).
    pub fn load(path: &Path, config: &Gpt2Config, loralib_alpha: f64) -> Result<Adapter, ModelError> {
        let mut matrices = if path.is_dir() {
            if !path.join(CONFIG_FILE).exists() {
                return Err(layout::folder_error(path));
            }
            peft::load(path, config)?
        } else if path.is_file() {
            loralib::load(path, config, loralib_alpha)?
        } else if path.exists() {
            let detail = "is neither a regular file nor a folder".into();
            return Err(ModelError::AdapterLayout { path: path.to_path_buf(), detail });
        } else {
            return Err(ModelError::AdapterNotFound { path: path.to_path_buf() });
        };
        for matrix in &matrices {
            check_update(path, matrix)?;
        }
        matrices.sort_by_key(|m| (m.layer, m.module));
        Ok(Adapter { path: path.to_path_buf(), base_shape: (config.n_embd, config.n_layer), matrices })
    }

    /// Bytes the factors take (f64), for logs.
    pub fn factor_bytes(&self) -> usize {
        let numel = |t: &Tensor| t.numel();
        self.matrices.iter().flat_map(|m| &m.parts).map(|p| 8 * (numel(&p.a) + numel(&p.b))).sum()
    }
}

/// Refuses a matrix whose update `s (B A)`, part by part (loralib's q and v parts reach
/// separate columns), is not finite or has an entry beyond `MAX_UPDATE_ENTRY`.
fn check_update(path: &Path, matrix: &AdaptedMatrix) -> Result<(), ModelError> {
    for part in &matrix.parts {
        if let Some(largest) = update_beyond_bound(matrix.scaling, &part.a, &part.b)? {
            let mut name = format!("h.{}.{}", matrix.layer, matrix.module.name());
            if matrix.parts.len() > 1 {
                let out = part.b.size().first().copied().unwrap_or(0);
                name += &format!(" columns {}..{}", part.column, part.column + out);
            }
            return Err(ModelError::AdapterUpdate {
                path: path.into(),
                matrix: name,
                largest,
                bound: MAX_UPDATE_ENTRY,
            });
        }
    }
    Ok(())
}
