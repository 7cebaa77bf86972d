//! Checkpoint files as flat maps from tensor name to tensor, read without Python.
//!
//! Accepted: `torch.save` files, both the zip archive (torch >= 1.6) and the legacy stream of
//! the original pretrained GPT-2 `pytorch_model.bin` (gpt2_ft.py's `{'model_state_dict': ...}`
//! or a flat state dict), and safetensors files.
//!
//! Every file is treated as hostile: the readers refuse, with a short [`CheckpointError`],
//! anything that would make them recurse deeply, allocate more than the file justifies, or
//! hand libtorch numbers it would choke on. The limits, each documented where it is enforced:
//!
//! * pickles ([`pickle`]): at most 16 MiB long, values nested at most 100 containers deep;
//!   memoized values are shared, never copied, and what a pickle builds stays within 32 bytes
//!   per byte read plus 64 KiB;
//! * zip archives ([`torch_zip`]): only uncompressed (stored) entries, each inside the archive,
//!   and all entries read together no longer than the archive;
//! * legacy streams ([`torch_legacy`]): every storage's byte range inside the file;
//! * tensors ([`torch_tensors`]): storage lengths in checked arithmetic, at most 25 dimensions,
//!   views inside their storage;
//! * safetensors ([`safetensors`]): a header of at most 1 MiB, validated in full before any
//!   tensor is built;
//! * at most [`MAX_TENSORS`] tensors per file;
//! * libtorch's own errors reach a caller as their first line only ([`torch_error`]).

mod pickle;
mod pickle_ops;
mod safetensors;
mod torch_error;
mod torch_legacy;
mod torch_tensors;
mod torch_writer;
mod torch_zip;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use tch::Tensor;

pub use torch_error::{short_torch_error, torch_error_line};
pub use torch_writer::save_torch_checkpoint;

/// Tensors a checkpoint may hold. GPT-2 XL has 580; each entry, even one that views the same
/// storage as another, costs libtorch a tensor object, so the count is bounded too.
pub const MAX_TENSORS: usize = 1 << 16;

/// What is wrong inside a file, before the file's path is attached.
#[derive(Debug)]
pub enum Malformed {
    /// The bytes contradict the format or themselves.
    Corrupt(String),
    /// The file asks for more than a reader's limit allows (nesting, size, dimensions).
    OverLimit(String),
}

impl Malformed {
    pub fn corrupt(detail: impl Into<String>) -> Self {
        Malformed::Corrupt(detail.into())
    }
    pub fn limit(detail: impl Into<String>) -> Self {
        Malformed::OverLimit(detail.into())
    }
    /// The error for this file.
    pub fn at(self, path: &Path) -> CheckpointError {
        let path = path.to_path_buf();
        match self {
            Malformed::Corrupt(detail) => CheckpointError::Corrupt { path, detail },
            Malformed::OverLimit(detail) => CheckpointError::OverLimit { path, detail },
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Corrupt(detail) | Malformed::OverLimit(detail) => f.write_str(detail),
        }
    }
}

/// `text`, cut to `max` characters (marked with `…`): error messages name things from the
/// file, which may be any length.
fn clip_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_string(),
    }
}

/// A name from a file (tensor, storage, entry), cut for an error message.
fn clip(name: &str) -> String {
    clip_to(name, 80)
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is corrupt or truncated: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("checkpoint {path} is refused: {detail}")]
    OverLimit { path: PathBuf, detail: String },
    #[error("checkpoint {path} is neither a torch.save zip archive nor a safetensors file")]
    UnknownFormat { path: PathBuf },
    #[error("checkpoint {path} holds no state dict: {detail}")]
    NoStateDict { path: PathBuf, detail: String },
    #[error("cannot write checkpoint {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// Every tensor of one checkpoint file, on the CPU, in its stored dtype.
pub struct StateDict {
    pub tensors: BTreeMap<String, Tensor>,
}

enum Format {
    TorchZip,
    LegacyTorch,
    Safetensors,
}

fn sniff(path: &Path) -> Result<Format, CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut head = [0u8; 16];
    let mut file = File::open(path).map_err(io)?;
    let n = file.read(&mut head).map_err(io)?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::TorchZip);
    }
    if head.starts_with(&[0x80, 0x02]) {
        return Ok(Format::LegacyTorch);
    }
    // safetensors: u64 little-endian header length, then a JSON object.
    if n >= 9 && head[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    Err(CheckpointError::UnknownFormat { path: path.to_path_buf() })
}

/// Reads every tensor of a checkpoint, unwrapping `model_state_dict` / `state_dict` if present.
pub fn load_state_dict(path: &Path) -> Result<StateDict, CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let tensors = match sniff(path)? {
        Format::Safetensors => safetensors::parse(&std::fs::read(path).map_err(io)?).map_err(|m| m.at(path))?,
        Format::TorchZip => {
            let file = BufReader::new(File::open(path).map_err(io)?);
            let (root, builder) = torch_zip::open(file).map_err(|m| m.at(path))?;
            collect_tensors(path, &root, builder)?
        }
        Format::LegacyTorch => {
            let (root, builder) = torch_legacy::open(std::fs::read(path).map_err(io)?).map_err(|m| m.at(path))?;
            collect_tensors(path, &root, builder)?
        }
    };
    Ok(StateDict { tensors })
}

/// Reads a `torch.save` archive (zip, or the legacy pre-1.6 stream) held in memory; `name`
/// stands for its path in errors. The fuzz targets drive the reader through this.
pub fn parse_torch_bytes(name: &str, bytes: &[u8]) -> Result<StateDict, CheckpointError> {
    let path = Path::new(name);
    let tensors = if bytes.starts_with(b"PK\x03\x04") {
        let (root, builder) = torch_zip::open(std::io::Cursor::new(bytes)).map_err(|m| m.at(path))?;
        collect_tensors(path, &root, builder)?
    } else if bytes.starts_with(&[0x80, 0x02]) {
        let (root, builder) = torch_legacy::open(bytes.to_vec()).map_err(|m| m.at(path))?;
        collect_tensors(path, &root, builder)?
    } else {
        return Err(CheckpointError::UnknownFormat { path: path.to_path_buf() });
    };
    Ok(StateDict { tensors })
}

/// Reads a safetensors file held in memory; `name` stands for its path in errors. A fuzz
/// target drives the header validation through this.
pub fn parse_safetensors_bytes(name: &str, bytes: &[u8]) -> Result<StateDict, CheckpointError> {
    let tensors = safetensors::parse(bytes).map_err(|m| m.at(Path::new(name)))?;
    Ok(StateDict { tensors })
}

/// Every tensor of the state dict inside `root`, by name.
fn collect_tensors<S: torch_tensors::StorageSource>(
    path: &Path,
    root: &pickle::Pickle,
    mut builder: torch_tensors::TensorBuilder<S>,
) -> Result<BTreeMap<String, Tensor>, CheckpointError> {
    let dict =
        find_state_dict(root).map_err(|detail| CheckpointError::NoStateDict { path: path.to_path_buf(), detail })?;
    if dict.len() > MAX_TENSORS {
        return Err(
            Malformed::limit(format!("a state dict of {} entries, more than {MAX_TENSORS}", dict.len())).at(path)
        );
    }
    let mut tensors = BTreeMap::new();
    for &(key, value) in dict {
        let Some(name) = root.str(key) else { continue };
        let in_tensor = |m: Malformed| match m {
            Malformed::Corrupt(d) => Malformed::Corrupt(format!("tensor `{}`: {d}", clip(name))),
            Malformed::OverLimit(d) => Malformed::OverLimit(format!("tensor `{}`: {d}", clip(name))),
        };
        let tensor = builder.tensor(root, value).map_err(|m| in_tensor(m).at(path))?;
        if let Some(tensor) = tensor {
            tensors.insert(name.to_string(), tensor);
        }
    }
    Ok(tensors)
}

/// The dict of tensors inside a pickle root: the root itself, or its `model_state_dict`.
fn find_state_dict(p: &pickle::Pickle) -> Result<&[(pickle::NodeId, pickle::NodeId)], String> {
    let pickle::Value::Dict(entries) = p.get(p.root()) else {
        return Err("the pickle's root is not a dict".into());
    };
    for wrapper in ["model_state_dict", "state_dict"] {
        if let Some(&(_, inner)) = entries.iter().find(|&&(k, _)| p.str(k) == Some(wrapper)) {
            return match p.get(inner) {
                pickle::Value::Dict(inner) => Ok(inner),
                _ => Err(format!("`{wrapper}` is not a dict")),
            };
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod safetensors_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
