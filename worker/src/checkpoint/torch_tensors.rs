//! Rebuilds tensors from a `torch.save` pickle: `_rebuild_tensor_v2(storage, offset, size,
//! stride, ...)` over storages that the container (zip archive or legacy stream) provides.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::pickle::Value;
use super::{short_torch_error, Malformed};

/// Where a checkpoint keeps its raw storages.
pub trait StorageSource {
    /// The little-endian bytes of storage `key`, which holds `numel` elements of `kind`.
    fn storage_bytes(&mut self, key: &str, kind: Kind, numel: i64) -> Result<Vec<u8>, Malformed>;
}

/// Builds tensors, loading each storage once even when several tensors view it.
pub struct TensorBuilder<S> {
    source: S,
    storages: HashMap<String, Tensor>,
}

impl<S: StorageSource> TensorBuilder<S> {
    pub fn new(source: S) -> Self {
        Self { source, storages: HashMap::new() }
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
        let numel = storage.size1().map_err(|e| Malformed(short_torch_error(&e)))?;
        if size.iter().all(|&s| s > 0) {
            let last = offset + size.iter().zip(&stride).map(|(s, st)| (s - 1) * st).sum::<i64>();
            if last >= numel {
                return Err(Malformed(format!(
                    "tensor of size {size:?} at offset {offset} reads past its storage of {numel} elements"
                )));
            }
        }
        storage.f_as_strided(&size, &stride, offset).map_err(|e| Malformed(short_torch_error(&e)))
    }

    /// Loads (once) the storage a persistent id names: `('storage', type, key, location, numel)`.
    fn storage(&mut self, pid: &Value) -> Result<Tensor, Malformed> {
        let Value::PersistentId(pid) = pid else {
            return Err(Malformed("tensor without a storage reference".into()));
        };
        let Value::Tuple(fields) = pid.as_ref() else {
            return Err(Malformed("storage reference is not a tuple".into()));
        };
        let (tag, type_name, key, numel) = storage_reference(fields)?;
        if tag != "storage" {
            return Err(Malformed(format!("unknown persistent id kind `{tag}`")));
        }
        if let Some(t) = self.storages.get(key) {
            return Ok(t.shallow_clone());
        }
        let kind = storage_kind(type_name)?;
        let numel = as_int(numel, "storage size")?;
        let bytes = self.source.storage_bytes(key, kind, numel)?;
        let expected = numel as usize * kind.elt_size_in_bytes();
        if bytes.len() != expected {
            return Err(Malformed(format!(
                "storage {key} holds {} bytes, expected {expected} ({numel} × {type_name}): truncated?",
                bytes.len()
            )));
        }
        let t = Tensor::f_from_data_size(&bytes, &[numel], kind).map_err(|e| Malformed(short_torch_error(&e)))?;
        self.storages.insert(key.clone(), t.shallow_clone());
        Ok(t)
    }
}

/// The fields of `('storage', type, key, location, numel[, view_metadata])`; the sixth field
/// only exists in the legacy format, where a view of another storage is not supported.
fn storage_reference(fields: &[Value]) -> Result<(&String, &String, &String, &Value), Malformed> {
    match fields {
        [Value::Str(tag), Value::Global { name, .. }, Value::Str(key), _location, numel, rest @ ..]
            if rest.iter().all(|v| *v == Value::None) && rest.len() <= 1 =>
        {
            Ok((tag, name, key, numel))
        }
        _ => Err(Malformed(format!("unsupported storage reference {fields:?}"))),
    }
}

/// Element size of every storage a pickle references, by key.
pub fn storage_kinds(value: &Value, out: &mut HashMap<String, Kind>) -> Result<(), Malformed> {
    match value {
        Value::PersistentId(pid) => {
            if let Value::Tuple(fields) = pid.as_ref() {
                let (_, type_name, key, _) = storage_reference(fields)?;
                out.insert(key.clone(), storage_kind(type_name)?);
            }
        }
        Value::Tuple(items) | Value::List(items) => items.iter().try_for_each(|v| storage_kinds(v, out))?,
        Value::Dict(entries) => entries.iter().try_for_each(|(k, v)| {
            storage_kinds(k, out)?;
            storage_kinds(v, out)
        })?,
        Value::Reduce { callable, args } => {
            storage_kinds(callable, out)?;
            storage_kinds(args, out)?;
        }
        _ => {}
    }
    Ok(())
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
