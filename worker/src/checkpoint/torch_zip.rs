//! `torch.save`'s zip container: a pickle (`*/data.pkl`) whose storages are the entries
//! `*/data/<key>` of the same archive.
//!
//! torch writes every entry uncompressed (`stored`), so only stored entries are read: nothing
//! is ever decompressed. Before an entry is read, the sizes its headers claim (zip64 ones
//! included) are checked against the archive: compressed and uncompressed sizes equal, and its
//! data inside the archive. Stored entries cannot overlap, so all the entries read add up to
//! at most the archive's length; an archive whose central directory points several entries at
//! the same bytes is refused when that sum is exceeded.

use std::io::{Read, Seek, SeekFrom};

use super::pickle::{self, Pickle};
use super::torch_tensors::{StorageSource, TensorBuilder};
use super::{clip, Malformed};

pub struct ZipStorages<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
    prefix: String,
    archive_len: u64,
    /// Bytes the entries read so far may still add up to.
    unread: u64,
}

impl<R: Read + Seek> ZipStorages<R> {
    /// The bytes of entry `name` (under the archive's prefix), which must hold `expected`
    /// bytes if given.
    fn read_entry(&mut self, name: &str, expected: Option<usize>) -> Result<Vec<u8>, Malformed> {
        let full = format!("{}{}", self.prefix, name);
        let shown = clip(&full);
        let fail = |e: &dyn std::fmt::Display| Malformed::corrupt(format!("entry {shown}: {e}"));
        let mut file = self.zip.by_name(&full).map_err(|e| fail(&e))?;
        let size = checked_entry_size(&file, self.archive_len).map_err(|e| fail(&e))?;
        if let Some(expected) = expected.filter(|&e| u64::try_from(e).ok() != Some(size)) {
            return Err(fail(&format!("holds {size} bytes, expected {expected}")));
        }
        if size > self.unread {
            return Err(fail(&"the entries read add up to more than the archive: entries overlap"));
        }
        self.unread -= size;
        let capacity = usize::try_from(size).map_err(|_| fail(&"too large for this machine"))?;
        let mut buf = Vec::with_capacity(capacity);
        file.by_ref().take(size).read_to_end(&mut buf).map_err(|e| fail(&e))?;
        if buf.len() != capacity {
            return Err(fail(&format!("ends after {} of {size} bytes: truncated?", buf.len())));
        }
        Ok(buf)
    }
}

/// The size of a stored entry whose headers agree and whose data lies inside the archive.
fn checked_entry_size<R: Read>(file: &zip::read::ZipFile<'_, R>, archive_len: u64) -> Result<u64, String> {
    if file.compression() != zip::CompressionMethod::Stored {
        return Err(format!("compressed with {}; torch.save stores entries uncompressed", file.compression()));
    }
    let (size, compressed) = (file.size(), file.compressed_size());
    if size != compressed {
        return Err(format!("stored entry claims {compressed} bytes stored for {size} bytes of data"));
    }
    match file.data_start().checked_add(size) {
        Some(end) if end <= archive_len => Ok(size),
        _ => Err(format!("claims {size} bytes, more than the archive of {archive_len} bytes holds there")),
    }
}

impl<R: Read + Seek> StorageSource for ZipStorages<R> {
    fn storage_bytes(&mut self, key: &str, len: usize) -> Result<Vec<u8>, Malformed> {
        self.read_entry(&format!("data/{key}"), Some(len))
    }
}

/// Opens the archive: its pickle's values, and a builder for the tensors it references.
pub fn open<R: Read + Seek>(mut reader: R) -> Result<(Pickle, TensorBuilder<ZipStorages<R>>), Malformed> {
    let archive_len =
        reader.seek(SeekFrom::End(0)).map_err(|e| Malformed::corrupt(format!("zip: cannot find its length: {e}")))?;
    let zip = zip::ZipArchive::new(reader).map_err(|e| Malformed::corrupt(format!("zip: {e}")))?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| Malformed::corrupt("zip archive has no data.pkl: not a torch.save file"))?
        .to_string();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut storages = ZipStorages { zip, prefix, archive_len, unread: archive_len };
    if storages.zip.index_for_name(&format!("{}byteorder", storages.prefix)).is_some() {
        let order = storages.read_entry("byteorder", None)?;
        if order.trim_ascii() != b"little" {
            return Err(Malformed::corrupt("big-endian tensor storages are not supported"));
        }
    }
    let root = pickle::parse(&storages.read_entry("data.pkl", None)?)?;
    Ok((root, TensorBuilder::new(storages)))
}
