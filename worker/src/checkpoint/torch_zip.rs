//! `torch.save`'s zip container: a pickle (`*/data.pkl`) whose storages are the entries
//! `*/data/<key>` of the same archive.

use std::io::{Read, Seek};

use tch::Kind;

use super::pickle::{self, Value};
use super::torch_tensors::{StorageSource, TensorBuilder};
use super::Malformed;

pub struct ZipStorages<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
    prefix: String,
}

impl<R: Read + Seek> ZipStorages<R> {
    fn read_entry(&mut self, name: &str) -> Result<Vec<u8>, Malformed> {
        let full = format!("{}{}", self.prefix, name);
        let mut file = self.zip.by_name(&full).map_err(|e| Malformed(format!("entry {full}: {e}")))?;
        let mut buf = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut buf).map_err(|e| Malformed(format!("entry {full}: {e}")))?;
        Ok(buf)
    }
}

impl<R: Read + Seek> StorageSource for ZipStorages<R> {
    fn storage_bytes(&mut self, key: &str, _kind: Kind, _numel: i64) -> Result<Vec<u8>, Malformed> {
        self.read_entry(&format!("data/{key}"))
    }
}

/// Opens the archive: its pickle's root value, and a builder for the tensors it references.
pub fn open<R: Read + Seek>(reader: R) -> Result<(Value, TensorBuilder<ZipStorages<R>>), Malformed> {
    let zip = zip::ZipArchive::new(reader).map_err(|e| Malformed(format!("zip: {e}")))?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| Malformed("zip archive has no data.pkl: not a torch.save file".into()))?
        .to_string();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut storages = ZipStorages { zip, prefix };
    if let Ok(order) = storages.read_entry("byteorder") {
        if order.trim_ascii() != b"little" {
            return Err(Malformed("big-endian tensor storages are not supported".into()));
        }
    }
    let root = pickle::parse(&storages.read_entry("data.pkl")?)?;
    Ok((root, TensorBuilder::new(storages)))
}
