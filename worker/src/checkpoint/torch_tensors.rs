//! Rebuilds tensors from a `torch.save` pickle: `_rebuild_tensor_v2(storage, offset, size,
//! stride, ...)` over storages that the container (zip archive or legacy stream) provides.
//!
//! A storage's byte length (elements × element size) is computed with checked arithmetic and
//! must equal what the container holds. A tensor's geometry is checked before libtorch sees
//! it: at most [`MAX_DIMS`] dimensions, no negative size, stride or offset, an element count
//! that fits in `i64` and is no larger than its storage's (torch.save writes views of a
//! storage, never expanded ones), and a last element, computed without overflow, inside the
//! storage.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::pickle::{describe, NodeId, Pickle, Value};
use super::{clip, short_torch_error, Malformed};

/// Dimensions a tensor may have (GPT-2's have at most 4; libtorch's kernels allow 25).
pub const MAX_DIMS: usize = 25;

/// Where a checkpoint keeps its raw storages.
pub trait StorageSource {
    /// The little-endian bytes of storage `key`, which must be exactly `len` bytes long; a
    /// source refuses a storage of another length before reading it.
    fn storage_bytes(&mut self, key: &str, len: usize) -> Result<Vec<u8>, Malformed>;
}

/// Builds tensors, loading each storage once even when several tensors view it.
pub struct TensorBuilder<S> {
    source: S,
    /// Each storage loaded so far, with its element count.
    storages: HashMap<String, (Tensor, i64)>,
}

/// `('storage', type, key, location, numel[, view_metadata])`, as torch pickles a storage.
pub struct StorageRef<'p> {
    pub type_name: &'p str,
    pub key: &'p str,
    numel: NodeId,
}

impl<S: StorageSource> TensorBuilder<S> {
    pub fn new(source: S) -> Self {
        Self { source, storages: HashMap::new() }
    }

    /// Turns a pickled tensor (`_rebuild_tensor_v2(...)` or `_rebuild_parameter(...)`) into a
    /// tensor. Returns `None` for values that are not tensors.
    pub fn tensor(&mut self, p: &Pickle, mut id: NodeId) -> Result<Option<Tensor>, Malformed> {
        // A loop, not recursion, through parameters wrapping parameters: each step goes one
        // value deeper, so it ends within the pickle's nesting limit.
        loop {
            let Value::Reduce { callable, args } = p.get(id) else { return Ok(None) };
            let Value::Global { module, name } = p.get(*callable) else { return Ok(None) };
            let Value::Tuple(args) = p.get(*args) else { return Ok(None) };
            match (module.as_str(), name.as_str()) {
                ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                    return self.rebuild_tensor(p, args).map(Some);
                }
                ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
                    id = *args.first().ok_or_else(|| Malformed::corrupt("_rebuild_parameter without data"))?;
                }
                _ => return Ok(None),
            }
        }
    }

    fn rebuild_tensor(&mut self, p: &Pickle, args: &[NodeId]) -> Result<Tensor, Malformed> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(Malformed::corrupt(format!("_rebuild_tensor_v2 with {} arguments", args.len())));
        };
        let (storage, numel) = self.storage(p, *storage)?;
        let offset = as_int(p, *offset, "storage offset")?;
        let size = as_ints(p, *size, "size")?;
        let stride = as_ints(p, *stride, "stride")?;
        check_geometry(&size, &stride, offset, numel)?;
        storage.f_as_strided(&size, &stride, offset).map_err(|e| Malformed::corrupt(short_torch_error(&e)))
    }

    /// Loads (once) the storage a persistent id names.
    fn storage(&mut self, p: &Pickle, pid: NodeId) -> Result<(Tensor, i64), Malformed> {
        let Value::PersistentId(fields) = p.get(pid) else {
            return Err(Malformed::corrupt("tensor without a storage reference"));
        };
        let r = storage_reference(p, *fields)?;
        if let Some((t, numel)) = self.storages.get(r.key) {
            return Ok((t.shallow_clone(), *numel));
        }
        let kind = storage_kind(r.type_name)?;
        let numel = as_int(p, r.numel, "storage size")?;
        let key = clip(r.key);
        let len = usize::try_from(numel).ok().and_then(|n| n.checked_mul(kind.elt_size_in_bytes()));
        let len = len.ok_or_else(|| Malformed::corrupt(format!("storage {key} claims {numel} elements")))?;
        let bytes = self.source.storage_bytes(r.key, len)?;
        if bytes.len() != len {
            return Err(Malformed::corrupt(format!(
                "storage {key} holds {} bytes, expected {len} ({numel} × {}): truncated?",
                bytes.len(),
                r.type_name
            )));
        }
        let t = Tensor::f_from_data_size(&bytes, &[numel], kind)
            .map_err(|e| Malformed::corrupt(format!("storage {key}: {}", short_torch_error(&e))))?;
        self.storages.insert(r.key.to_string(), (t.shallow_clone(), numel));
        Ok((t, numel))
    }
}

/// Refuses a view that libtorch would reject, that reads outside its storage, or whose
/// arithmetic overflows; the numbers come from the file.
pub fn check_geometry(size: &[i64], stride: &[i64], offset: i64, storage_numel: i64) -> Result<(), Malformed> {
    let bad = |why: String| Malformed::corrupt(format!("invalid tensor geometry: {why}"));
    if size.len() != stride.len() {
        return Err(bad(format!("{} sizes but {} strides", size.len(), stride.len())));
    }
    if size.len() > MAX_DIMS {
        return Err(Malformed::limit(format!("tensor has {} dimensions, more than {MAX_DIMS}", size.len())));
    }
    if offset < 0 || size.iter().chain(stride).any(|&v| v < 0) {
        return Err(bad(format!("negative size, stride or offset: size {size:?} stride {stride:?} offset {offset}")));
    }
    let numel = size.iter().try_fold(1i64, |n, &s| n.checked_mul(s));
    let numel = numel.ok_or_else(|| bad(format!("the element count of size {size:?} overflows")))?;
    if numel > storage_numel || offset > storage_numel {
        return Err(bad(format!("{numel} elements at offset {offset} in a storage of {storage_numel} elements")));
    }
    if numel == 0 {
        return Ok(());
    }
    // Every size is at least 1 here; the last element is offset + Σ (size - 1) × stride.
    let last = size.iter().zip(stride).try_fold(offset, |at, (&s, &st)| at.checked_add((s - 1).checked_mul(st)?));
    match last {
        Some(last) if last < storage_numel => Ok(()),
        _ => Err(bad(format!(
            "size {size:?} stride {stride:?} at offset {offset} reads past its storage of {storage_numel} elements"
        ))),
    }
}

/// The fields of `('storage', type, key, location, numel[, view_metadata])`; the sixth field
/// only exists in the legacy format, where a view of another storage is not supported.
pub fn storage_reference(p: &Pickle, pid: NodeId) -> Result<StorageRef<'_>, Malformed> {
    let Value::Tuple(fields) = p.get(pid) else {
        return Err(Malformed::corrupt(format!("storage reference is {}, not a tuple", describe(p.get(pid)))));
    };
    let unsupported = || Malformed::corrupt(format!("unsupported storage reference of {} fields", fields.len()));
    let [tag, type_name, key, _location, numel, rest @ ..] = fields.as_slice() else {
        return Err(unsupported());
    };
    let view_of_another = rest.len() > 1 || rest.iter().any(|&v| !matches!(p.get(v), Value::None));
    match (p.str(*tag), p.get(*type_name), p.str(*key)) {
        (Some("storage"), Value::Global { name, .. }, Some(key)) if !view_of_another => {
            Ok(StorageRef { type_name: name, key, numel: *numel })
        }
        (Some(tag), _, _) if tag != "storage" => {
            Err(Malformed::corrupt(format!("unknown persistent id kind `{}`", clip(tag))))
        }
        _ => Err(unsupported()),
    }
}

/// Element type of every storage a pickle references, by key. Walks the arena in a line, not
/// the tree: shared values are visited once, and nothing recurses.
pub fn storage_kinds(p: &Pickle) -> Result<HashMap<String, Kind>, Malformed> {
    let mut out = HashMap::new();
    for value in p.values() {
        let Value::PersistentId(fields) = value else { continue };
        let r = storage_reference(p, *fields)?;
        let kind = storage_kind(r.type_name)?;
        if out.insert(r.key.to_string(), kind).is_some_and(|old| old != kind) {
            return Err(Malformed::corrupt(format!("storage {} is referenced with two types", clip(r.key))));
        }
    }
    Ok(out)
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
        other => return Err(Malformed::corrupt(format!("unsupported storage type {}", clip(other)))),
    })
}

fn as_int(p: &Pickle, id: NodeId, what: &str) -> Result<i64, Malformed> {
    match p.get(id) {
        Value::Int(i) => Ok(*i),
        other => Err(Malformed::corrupt(format!("{what} is {}, not an integer", describe(other)))),
    }
}

/// The integers of a size or stride tuple; more than [`MAX_DIMS`] are refused before they are
/// collected.
fn as_ints(p: &Pickle, id: NodeId, what: &str) -> Result<Vec<i64>, Malformed> {
    match p.get(id) {
        Value::Tuple(items) | Value::List(items) if items.len() > MAX_DIMS => {
            Err(Malformed::limit(format!("tensor {what} has {} dimensions, more than {MAX_DIMS}", items.len())))
        }
        Value::Tuple(items) | Value::List(items) => items.iter().map(|&i| as_int(p, i, what)).collect(),
        other => Err(Malformed::corrupt(format!("{what} is {}, not a tuple", describe(other)))),
    }
}
