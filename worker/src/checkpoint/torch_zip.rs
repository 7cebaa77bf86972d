//! Reads `torch.save` zip archives: a pickle (`*/data.pkl`) whose tensors point at raw
//! little-endian storages (`*/data/<key>`) in the same archive.

use std::collections::HashMap;
use std::io::{Read, Seek};

use tch::{Kind, Tensor};

use super::pickle::{self, Value};
use super::Malformed;

/// The tensors found in the archive's pickle, by their dotted path, plus the pickle's root.
pub struct TorchArchive<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
    prefix: String,
    storages: HashMap<String, Tensor>,
}

impl<R: Read + Seek> TorchArchive<R> {
    pub fn open(reader: R) -> Result<Self, Malformed> {
        let zip = zip::ZipArchive::new(reader).map_err(|e| Malformed(format!("zip: {e}")))?;
        let pkl = zip
            .file_names()
            .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
            .ok_or_else(|| Malformed("zip archive has no data.pkl: not a torch.save file".into()))?
            .to_string();
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let mut archive = Self { zip, prefix, storages: HashMap::new() };
        if let Ok(order) = archive.read_entry("byteorder") {
            if order.trim_ascii() != b"little" {
                return Err(Malformed("big-endian tensor storages are not supported".into()));
            }
        }
        Ok(archive)
    }

    fn read_entry(&mut self, name: &str) -> Result<Vec<u8>, Malformed> {
        let full = format!("{}{}", self.prefix, name);
        let mut file = self.zip.by_name(&full).map_err(|e| Malformed(format!("entry {full}: {e}")))?;
        let mut buf = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut buf).map_err(|e| Malformed(format!("entry {full}: {e}")))?;
        Ok(buf)
    }

    /// Parses the archive's pickle.
    pub fn root(&mut self) -> Result<Value, Malformed> {
        let bytes = self.read_entry("data.pkl")?;
        pickle::parse(&bytes)
    }

    /// Turns a pickled tensor (`_rebuild_tensor_v2(...)` or `_rebuild_parameter(...)`) into a
    /// tensor. Returns `None` for values that are not tensors.
    pub fn tensor(&mut self, value: &Value) -> Result<Option<Tensor>, Malformed> {
        let Value::Reduce { callable, args } = value else {
            return Ok(None);
        };
        let Value::Global { module, name } = callable.as_ref() else {
            return Ok(None);
        };
        let Value::Tuple(args) = args.as_ref() else {
            return Ok(None);
        };
        match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                self.rebuild_tensor(args).map(Some)
            }
            ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
                match args.first() {
                    Some(data) => self.tensor(data),
                    None => Err(Malformed("_rebuild_parameter without data".into())),
                }
            }
            _ => Ok(None),
        }
    }

    fn rebuild_tensor(&mut self, args: &[Value]) -> Result<Tensor, Malformed> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(Malformed(format!("_rebuild_tensor_v2 with {} arguments", args.len())));
        };
        let storage = self.storage(storage)?;
        let offset = as_int(offset, "storage offset")?;
        let size = as_ints(size, "size")?;
        let stride = as_ints(stride, "stride")?;
        if size.len() != stride.len() || offset < 0 || size.iter().chain(&stride).any(|&v| v < 0) {
            return Err(Malformed(format!("invalid tensor geometry: size {size:?} stride {stride:?}")));
        }
        let numel = storage.size1().map_err(|e| Malformed(e.to_string()))?;
        if size.iter().all(|&s| s > 0) {
            let last = offset + size.iter().zip(&stride).map(|(s, st)| (s - 1) * st).sum::<i64>();
            if last >= numel {
                return Err(Malformed(format!(
                    "tensor of size {size:?} at offset {offset} reads past its storage of {numel} elements"
                )));
            }
        }
        storage.f_as_strided(&size, &stride, offset).map_err(|e| Malformed(e.to_string()))
    }

    /// Loads (once) the storage a persistent id names: `('storage', type, key, location, numel)`.
    fn storage(&mut self, pid: &Value) -> Result<Tensor, Malformed> {
        let Value::PersistentId(pid) = pid else {
            return Err(Malformed("tensor without a storage reference".into()));
        };
        let Value::Tuple(fields) = pid.as_ref() else {
            return Err(Malformed("storage reference is not a tuple".into()));
        };
        let [Value::Str(tag), Value::Global { name: type_name, .. }, Value::Str(key), _location, numel] =
            fields.as_slice()
        else {
            return Err(Malformed(format!("unexpected storage reference {fields:?}")));
        };
        if tag != "storage" {
            return Err(Malformed(format!("unknown persistent id kind `{tag}`")));
        }
        if let Some(t) = self.storages.get(key) {
            return Ok(t.shallow_clone());
        }
        let kind = storage_kind(type_name)?;
        let numel = as_int(numel, "storage size")?;
        let bytes = self.read_entry(&format!("data/{key}"))?;
        let expected = numel as usize * kind.elt_size_in_bytes();
        if bytes.len() != expected {
            return Err(Malformed(format!(
                "storage {key} holds {} bytes, expected {expected} ({numel} × {type_name}): truncated?",
                bytes.len()
            )));
        }
        let t = Tensor::f_from_data_size(&bytes, &[numel], kind).map_err(|e| Malformed(e.to_string()))?;
        self.storages.insert(key.clone(), t.shallow_clone());
        Ok(t)
    }
}

fn storage_kind(type_name: &str) -> Result<Kind, Malformed> {
    Ok(match type_name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        other => return Err(Malformed(format!("unsupported storage type {other}"))),
    })
}

fn as_int(v: &Value, what: &str) -> Result<i64, Malformed> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(Malformed(format!("{what} is not an integer: {other:?}"))),
    }
}

fn as_ints(v: &Value, what: &str) -> Result<Vec<i64>, Malformed> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| as_int(i, what)).collect(),
        other => Err(Malformed(format!("{what} is not a tuple: {other:?}"))),
    }
}
