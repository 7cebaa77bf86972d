//! Writes tensors in `torch.save`'s zip format, nested as gpt2_ft.py saves its checkpoints:
//! `{'model_state_dict': {name: tensor}}`. `torch.load` reads the result.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tch::{Kind, Tensor};
use zip::write::SimpleFileOptions;

use super::CheckpointError;

fn storage_type(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Float => "FloatStorage",
        Kind::Double => "DoubleStorage",
        Kind::Half => "HalfStorage",
        Kind::BFloat16 => "BFloat16Storage",
        Kind::Int64 => "LongStorage",
        _ => return None,
    })
}

/// Pickle opcodes (protocol 2), written by hand: the subset `torch.load` needs.
struct Pickler(Vec<u8>);

impl Pickler {
    fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: i64) {
        if let Ok(small) = i32::try_from(v) {
            self.0.push(b'J');
            self.0.extend_from_slice(&small.to_le_bytes());
        } else {
            self.0.extend_from_slice(&[0x8a, 8]);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn int_tuple(&mut self, values: &[i64]) {
        self.0.push(b'(');
        values.iter().for_each(|&v| self.int(v));
        self.0.push(b't');
    }
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }
}

/// Saves `tensors` as gpt2_ft.py does (`torch.save({'model_state_dict': ...}, path)`).
pub fn save_torch_checkpoint(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    let fail = |detail: String| CheckpointError::Write { path: path.to_path_buf(), detail };
    let mut p = Pickler(vec![0x80, 2]);
    p.op(b'}');
    p.str("model_state_dict");
    p.op(b'}');
    p.op(b'(');
    let mut storages = Vec::with_capacity(tensors.len());
    for (key, (name, tensor)) in tensors.iter().enumerate() {
        let kind = tensor.kind();
        let storage = storage_type(kind).ok_or_else(|| fail(format!("tensor {name}: unsupported dtype {kind:?}")))?;
        let tensor = tensor.to_device(tch::Device::Cpu).contiguous();
        let size = tensor.size();
        let numel = tensor.numel();
        let mut stride = vec![1i64; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1];
        }
        p.str(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        p.op(b'(');
        p.str("storage");
        p.global("torch", storage);
        p.str(&key.to_string());
        p.str("cpu");
        p.int(numel as i64);
        p.op(b't');
        p.op(b'Q');
        p.int(0);
        p.int_tuple(&size);
        p.int_tuple(&stride);
        p.op(0x89);
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R');
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        tensor.f_copy_data_u8(&mut bytes, numel).map_err(|e| fail(format!("tensor {name}: {e}")))?;
        storages.push(bytes);
    }
    p.op(b'u');
    p.op(b's');
    p.op(b'.');

    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut zip = zip::ZipWriter::new(file);
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entry = |name: String, data: &[u8], align: u16| -> zip::result::ZipResult<()> {
        zip.start_file(name, stored.with_alignment(align))?;
        zip.write_all(data)?;
        Ok(())
    };
    let mut write = || -> zip::result::ZipResult<()> {
        entry("archive/data.pkl".into(), &p.0, 1)?;
        entry("archive/byteorder".into(), b"little", 1)?;
        for (key, bytes) in storages.iter().enumerate() {
            entry(format!("archive/data/{key}"), bytes, 64)?;
        }
        entry("archive/version".into(), b"3\n", 1)?;
        Ok(())
    };
    write().map_err(|e| fail(e.to_string()))?;
    zip.finish().map_err(|e| fail(e.to_string()))?;
    Ok(())
}
