//! safetensors files, validated here before libtorch sees a byte of them.
//!
//! Layout: a little-endian `u64` header length N, N bytes of a JSON object, then the data.
//! Rules, all checked before any tensor is built:
//!
//! * N is at most [`MAX_HEADER`] (1 MiB; GPT-2 XL's full state dict needs about 60 KB) and the
//!   header lies inside the file;
//! * the header is a JSON object (serde_json refuses nesting deeper than 128 without
//!   recursing further); `__metadata__` is skipped unread, every other key is a tensor
//!   `{"dtype", "shape", "data_offsets"}`, named once;
//! * a tensor's dtype is one libtorch has, its shape at most [`MAX_DIMS`] long (refused while
//!   reading, before more is collected), and its element count × element size, in checked
//!   arithmetic, equals the length of its data range;
//! * the ranges, sorted, tile the data exactly: the first starts at 0, each starts where the
//!   previous one ended, the last ends at the end of the file. So none overlaps another or
//!   leaves the file, and the tensors built hold no more bytes than the file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use tch::{Kind, Tensor};

use super::torch_tensors::MAX_DIMS;
use super::{clip, clip_to, short_torch_error, Malformed, MAX_TENSORS};

/// Bytes a header may have.
pub const MAX_HEADER: usize = 1 << 20;

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    #[serde(deserialize_with = "bounded_shape")]
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Every tensor of a safetensors file, by name.
pub fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, Malformed> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Malformed::corrupt("safetensors: shorter than its header length"))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER as u64 {
        return Err(Malformed::limit(format!("safetensors: a header of {header_len} bytes, more than {MAX_HEADER}")));
    }
    let data_start = 8 + header_len as usize;
    let header = bytes.get(8..data_start).ok_or_else(|| {
        Malformed::corrupt(format!("safetensors: a header of {header_len} bytes in a file of {}", bytes.len()))
    })?;
    let data = bytes.get(data_start..).unwrap_or_default();
    let mut json = serde_json::Deserializer::from_slice(header);
    // `end` refuses anything but whitespace (padding) after the object.
    let entries = (&mut json).deserialize_map(HeaderVisitor).and_then(|entries| json.end().map(|()| entries));
    let entries =
        entries.map_err(|e| Malformed::corrupt(format!("safetensors header: {}", clip_to(&e.to_string(), 200))))?;
    if entries.len() > MAX_TENSORS {
        return Err(Malformed::limit(format!("safetensors: {} tensors, more than {MAX_TENSORS}", entries.len())));
    }
    let mut tensors = BTreeMap::new();
    for Checked { name, kind, shape, range } in check_entries(entries, data.len())? {
        let slice = data.get(range).ok_or_else(|| Malformed::corrupt("safetensors: a range outside the data"))?;
        let tensor = Tensor::f_from_data_size(slice, &shape, kind).map_err(|e| {
            Malformed::corrupt(format!("safetensors tensor `{}`: {}", clip(&name), short_torch_error(&e)))
        })?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// A tensor whose entry passed every rule of the module docs.
struct Checked {
    name: String,
    kind: Kind,
    shape: Vec<i64>,
    range: Range<usize>,
}

/// Checks one entry: its dtype, and its shape's byte length against its range.
fn check_entry(name: String, entry: Entry) -> Result<Checked, Malformed> {
    let bad = |why: String| Malformed::corrupt(format!("safetensors tensor `{}`: {why}", clip(&name)));
    let kind = kind_of(&entry.dtype).ok_or_else(|| bad(format!("unsupported dtype {}", clip(&entry.dtype))))?;
    let shape: Result<Vec<i64>, _> = entry.shape.iter().map(|&d| i64::try_from(d)).collect();
    let shape = shape.map_err(|_| bad("a dimension does not fit in i64".into()))?;
    let bytes = shape
        .iter()
        .try_fold(1i64, |n, &d| n.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_mul(kind.elt_size_in_bytes()));
    let bytes = bytes.ok_or_else(|| bad(format!("the size of shape {:?} overflows", entry.shape)))?;
    let (begin, end) = entry.data_offsets;
    let range = usize::try_from(begin).ok().zip(usize::try_from(end).ok()).filter(|(b, e)| b <= e);
    let (b, e) = range.ok_or_else(|| bad(format!("data_offsets [{begin}, {end}] are not a range")))?;
    if e - b != bytes {
        return Err(bad(format!(
            "shape {:?} of {} needs {bytes} bytes, its data has {}",
            entry.shape,
            entry.dtype,
            e - b
        )));
    }
    Ok(Checked { name, kind, shape, range: b..e })
}

/// Every entry checked, and their ranges tiling the data exactly.
fn check_entries(entries: BTreeMap<String, Entry>, data_len: usize) -> Result<Vec<Checked>, Malformed> {
    let mut checked = entries.into_iter().map(|(n, e)| check_entry(n, e)).collect::<Result<Vec<_>, _>>()?;
    checked.sort_by_key(|c| (c.range.start, c.range.end));
    let mut next = 0;
    for c in &checked {
        if c.range.start != next {
            let why = if c.range.start < next { "overlaps the tensor before it" } else { "leaves a gap before it" };
            return Err(Malformed::corrupt(format!("safetensors tensor `{}`: its data {why}", clip(&c.name))));
        }
        next = c.range.end;
    }
    if next != data_len {
        return Err(Malformed::corrupt(format!(
            "safetensors: the tensors cover {next} bytes of data, the file holds {data_len}"
        )));
    }
    Ok(checked)
}

fn kind_of(dtype: &str) -> Option<Kind> {
    Some(match dtype {
        "BOOL" => Kind::Bool,
        "U8" => Kind::Uint8,
        "I8" => Kind::Int8,
        "I16" => Kind::Int16,
        "I32" => Kind::Int,
        "I64" => Kind::Int64,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "F32" => Kind::Float,
        "F64" => Kind::Double,
        _ => return None,
    })
}

/// The header object: tensors by name; `__metadata__` skipped without being collected.
struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = BTreeMap<String, Entry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let entry = map.next_value::<Entry>()?;
            if entries.insert(name, entry).is_some() {
                return Err(de::Error::custom("a tensor is named twice"));
            }
        }
        Ok(entries)
    }
}

/// A shape, refused as soon as it is longer than [`MAX_DIMS`].
fn bounded_shape<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    struct Shape;
    impl<'de> Visitor<'de> for Shape {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a shape of at most {MAX_DIMS} dimensions")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut shape = Vec::new();
            while let Some(d) = seq.next_element::<u64>()? {
                if shape.len() == MAX_DIMS {
                    return Err(de::Error::custom(format!("a shape of more than {MAX_DIMS} dimensions")));
                }
                shape.push(d);
            }
            Ok(shape)
        }
    }
    d.deserialize_seq(Shape)
}
