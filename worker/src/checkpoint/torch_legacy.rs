//! The legacy (pre-1.6) `torch.save` stream, which the original pretrained GPT-2
//! `pytorch_model.bin` files use: five pickles one after another (magic number, protocol
//! version, system info, the object, the storage keys in order), then every storage as a
//! little-endian `u64` element count followed by its raw bytes.

use std::collections::HashMap;

use tch::Kind;

use super::pickle::{parse_prefix, Value};
use super::torch_tensors::{storage_kinds, StorageSource, TensorBuilder};
use super::Malformed;

/// `0x1950a86a20f9469cfc6c`, little-endian, as `torch.save` pickles it.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Storages as byte ranges of the file.
pub struct LegacyStorages {
    data: Vec<u8>,
    ranges: HashMap<String, (usize, usize)>,
}

impl StorageSource for LegacyStorages {
    fn storage_bytes(&mut self, key: &str, _kind: Kind, _numel: i64) -> Result<Vec<u8>, Malformed> {
        let &(start, end) =
            self.ranges.get(key).ok_or_else(|| Malformed(format!("storage {key} is not in the file")))?;
        Ok(self.data[start..end].to_vec())
    }
}

/// Parses a legacy stream: its object's root value, and a builder for the tensors it holds.
pub fn open(data: Vec<u8>) -> Result<(Value, TensorBuilder<LegacyStorages>), Malformed> {
    let mut pos = 0;
    let next = |pos: &mut usize| -> Result<Value, Malformed> {
        let (value, used) = parse_prefix(&data[*pos..])?;
        *pos += used;
        Ok(value)
    };
    match next(&mut pos)? {
        Value::BigInt(bytes) if bytes == MAGIC => {}
        _ => return Err(Malformed("not a torch.save stream (bad magic number)".into())),
    }
    if next(&mut pos)? != Value::Int(PROTOCOL_VERSION) {
        return Err(Malformed("unsupported legacy torch.save protocol version".into()));
    }
    if let Value::Dict(info) = next(&mut pos)? {
        let big_endian = info.iter().any(|(k, v)| *k == Value::Str("little_endian".into()) && *v == Value::Bool(false));
        if big_endian {
            return Err(Malformed("big-endian tensor storages are not supported".into()));
        }
    }
    let root = next(&mut pos)?;
    let Value::List(keys) = next(&mut pos)? else {
        return Err(Malformed("the storage key list is missing".into()));
    };
    let mut kinds = HashMap::new();
    storage_kinds(&root, &mut kinds)?;
    let mut ranges = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else { return Err(Malformed("a storage key is not a string".into())) };
        let kind = *kinds.get(&key).ok_or_else(|| Malformed(format!("storage {key} is never referenced")))?;
        let header = data.get(pos..pos + 8).ok_or_else(|| Malformed(format!("storage {key}: file ends early")))?;
        let numel = u64::from_le_bytes(header.try_into().map_err(|_| Malformed("bad storage header".into()))?);
        let start = pos + 8;
        let end = (numel as usize)
            .checked_mul(kind.elt_size_in_bytes())
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| Malformed(format!("storage {key} of {numel} elements runs past the end: truncated?")))?;
        ranges.insert(key, (start, end));
        pos = end;
    }
    Ok((root, TensorBuilder::new(LegacyStorages { data, ranges })))
}
