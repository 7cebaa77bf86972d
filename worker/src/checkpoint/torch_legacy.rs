//! The legacy (pre-1.6) `torch.save` stream, which the original pretrained GPT-2
//! `pytorch_model.bin` files use: five pickles one after another (magic number, protocol
//! version, system info, the object, the storage keys in order), then every storage as a
//! little-endian `u64` element count followed by its raw bytes. Each storage's byte range is
//! computed with checked arithmetic and must lie inside the file.

use std::collections::HashMap;

use super::pickle::{parse_prefix, Pickle, Value};
use super::torch_tensors::{storage_kinds, StorageSource, TensorBuilder};
use super::{clip, Malformed};

/// `0x1950a86a20f9469cfc6c`, little-endian, as `torch.save` pickles it.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Storages as byte ranges of the file.
pub struct LegacyStorages {
    data: Vec<u8>,
    ranges: HashMap<String, (usize, usize)>,
}

impl StorageSource for LegacyStorages {
    fn storage_bytes(&mut self, key: &str, len: usize) -> Result<Vec<u8>, Malformed> {
        let missing = || Malformed::corrupt(format!("storage {} is not in the file", clip(key)));
        let &(start, end) = self.ranges.get(key).ok_or_else(missing)?;
        let held = end.saturating_sub(start);
        if held != len {
            return Err(Malformed::corrupt(format!("storage {} holds {held} bytes, expected {len}", clip(key))));
        }
        Ok(self.data.get(start..end).ok_or_else(missing)?.to_vec())
    }
}

/// Parses a legacy stream: its object's values, and a builder for the tensors it holds.
pub fn open(data: Vec<u8>) -> Result<(Pickle, TensorBuilder<LegacyStorages>), Malformed> {
    let mut pos = 0;
    let next = |pos: &mut usize| -> Result<Pickle, Malformed> {
        let (pickle, used) = parse_prefix(data.get(*pos..).unwrap_or_default())?;
        *pos += used;
        Ok(pickle)
    };
    let magic = next(&mut pos)?;
    if !matches!(magic.get(magic.root()), Value::BigInt(bytes) if *bytes == MAGIC) {
        return Err(Malformed::corrupt("not a torch.save stream (bad magic number)"));
    }
    let version = next(&mut pos)?;
    if !matches!(version.get(version.root()), Value::Int(PROTOCOL_VERSION)) {
        return Err(Malformed::corrupt("unsupported legacy torch.save protocol version"));
    }
    let info = next(&mut pos)?;
    if let Value::Dict(entries) = info.get(info.root()) {
        let big_endian = entries
            .iter()
            .any(|&(k, v)| info.str(k) == Some("little_endian") && matches!(info.get(v), Value::Bool(false)));
        if big_endian {
            return Err(Malformed::corrupt("big-endian tensor storages are not supported"));
        }
    }
    let root = next(&mut pos)?;
    let keys = next(&mut pos)?;
    let Value::List(key_ids) = keys.get(keys.root()) else {
        return Err(Malformed::corrupt("the storage key list is missing"));
    };
    let kinds = storage_kinds(&root)?;
    let mut ranges = HashMap::new();
    for &id in key_ids {
        let key = keys.str(id).ok_or_else(|| Malformed::corrupt("a storage key is not a string"))?;
        let kind =
            *kinds.get(key).ok_or_else(|| Malformed::corrupt(format!("storage {} is never referenced", clip(key))))?;
        let range = storage_range(&data, pos, kind.elt_size_in_bytes()).ok_or_else(|| {
            Malformed::corrupt(format!("storage {} runs past the end of the file: truncated?", clip(key)))
        })?;
        pos = range.1;
        ranges.insert(key.to_string(), range);
    }
    Ok((root, TensorBuilder::new(LegacyStorages { data, ranges })))
}

/// The byte range of the storage whose `u64` element count is at `pos`, if all of it is in
/// `data`.
fn storage_range(data: &[u8], pos: usize, elt_size: usize) -> Option<(usize, usize)> {
    let start = pos.checked_add(8)?;
    let header: [u8; 8] = data.get(pos..start)?.try_into().ok()?;
    let numel = usize::try_from(u64::from_le_bytes(header)).ok()?;
    let end = start.checked_add(numel.checked_mul(elt_size)?)?;
    (end <= data.len()).then_some((start, end))
}
