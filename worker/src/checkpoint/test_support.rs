//! Hostile files built byte by byte for the readers' tests: pickles, zip archives (with forged
//! central directories) and legacy streams.

/// Pickle opcodes for a torch state dict, written by hand.
pub struct PickleBytes(pub Vec<u8>);

/// One tensor of a hand-written state dict: `name` views storage `key` of `numel` floats.
pub struct TensorSpec<'a> {
    pub name: &'a str,
    pub key: &'a str,
    pub numel: i64,
    pub size: &'a [i64],
    pub stride: &'a [i64],
    pub offset: i64,
}

impl PickleBytes {
    pub fn new() -> Self {
        PickleBytes(vec![0x80, 2])
    }
    pub fn op(&mut self, op: u8) -> &mut Self {
        self.0.push(op);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&[0x8a, 8]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn ints(&mut self, values: &[i64]) -> &mut Self {
        self.op(b'(');
        values.iter().for_each(|&v| {
            self.int(v);
        });
        self.op(b't')
    }
    /// `_rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride)`.
    pub fn tensor(&mut self, t: &TensorSpec) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(').str("storage").global("torch", "FloatStorage").str(t.key).str("cpu").int(t.numel).op(b't');
        self.op(b'Q').int(t.offset).ints(t.size).ints(t.stride).op(0x89).op(b't').op(b'R')
    }
    /// `{name: tensor, ...}`, ended with STOP.
    pub fn state_dict(tensors: &[TensorSpec]) -> Vec<u8> {
        let mut p = PickleBytes::new();
        p.op(b'}').op(b'(');
        for t in tensors {
            p.str(t.name).tensor(t);
        }
        p.op(b'u').op(b'.');
        p.0
    }
}

/// One entry of a hand-written zip archive.
pub struct ZipEntry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    /// A size for the central directory to claim in a zip64 extra field instead of the real one.
    pub claimed_size: Option<u64>,
    /// The compression method the headers name (0: stored).
    pub method: u16,
    /// Point the central directory at the local header of this earlier entry instead.
    pub same_data_as: Option<usize>,
}

impl<'a> ZipEntry<'a> {
    pub fn stored(name: &'a str, data: &'a [u8]) -> Self {
        ZipEntry { name, data, claimed_size: None, method: 0, same_data_as: None }
    }
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A zip archive of `entries`, with whatever central directory the entries ask for.
pub fn zip_bytes(entries: &[ZipEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(out.len() as u32);
        if e.same_data_as.is_some() {
            continue; // only a central directory entry
        }
        put32(&mut out, 0x0403_4b50);
        put16(&mut out, 20);
        put16(&mut out, 0);
        put16(&mut out, e.method);
        put32(&mut out, 0); // time, date
        put32(&mut out, crc32(e.data));
        put32(&mut out, e.data.len() as u32);
        put32(&mut out, e.data.len() as u32);
        put16(&mut out, e.name.len() as u16);
        put16(&mut out, 0);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(e.data);
    }
    let cd_start = out.len() as u32;
    for (i, e) in entries.iter().enumerate() {
        let (size, extra) = match e.claimed_size {
            Some(claimed) => {
                let mut extra = vec![0x01, 0x00, 16, 0];
                extra.extend_from_slice(&claimed.to_le_bytes());
                extra.extend_from_slice(&claimed.to_le_bytes());
                (u32::MAX, extra)
            }
            None => (e.data.len() as u32, Vec::new()),
        };
        put32(&mut out, 0x0201_4b50);
        put16(&mut out, 45);
        put16(&mut out, 45);
        put16(&mut out, 0);
        put16(&mut out, e.method);
        put32(&mut out, 0);
        put32(&mut out, crc32(e.data));
        put32(&mut out, size);
        put32(&mut out, size);
        put16(&mut out, e.name.len() as u16);
        put16(&mut out, extra.len() as u16);
        put16(&mut out, 0); // comment
        put16(&mut out, 0); // disk
        put16(&mut out, 0); // internal attributes
        put32(&mut out, 0); // external attributes
        put32(&mut out, offsets[e.same_data_as.unwrap_or(i)]);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&extra);
    }
    let cd_len = out.len() as u32 - cd_start;
    put32(&mut out, 0x0605_4b50);
    put32(&mut out, 0); // disks
    put16(&mut out, entries.len() as u16);
    put16(&mut out, entries.len() as u16);
    put32(&mut out, cd_len);
    put32(&mut out, cd_start);
    put16(&mut out, 0);
    out
}

/// A torch.save zip archive of `pickle` and the given storages.
pub fn torch_zip(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = storages.iter().map(|(key, _)| format!("archive/data/{key}")).collect();
    let mut entries =
        vec![ZipEntry::stored("archive/data.pkl", pickle), ZipEntry::stored("archive/byteorder", b"little")];
    entries.extend(names.iter().zip(storages).map(|(name, (_, data))| ZipEntry::stored(name, data)));
    zip_bytes(&entries)
}

/// `0x1950a86a20f9469cfc6c`, the legacy magic number, as a LONG1 pickle.
pub fn legacy_stream(root: &[u8], keys: &[&str], storages: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.'];
    out.extend_from_slice(&[0x80, 2, b'M', 0xe9, 0x03, b'.']);
    out.extend_from_slice(&[0x80, 2, b'}', b'.']);
    out.extend_from_slice(root);
    let mut list = PickleBytes::new();
    list.op(b']').op(b'(');
    keys.iter().for_each(|k| {
        list.str(k);
    });
    list.op(b'e').op(b'.');
    out.extend_from_slice(&list.0);
    for (numel, data) in storages {
        out.extend_from_slice(&numel.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// `n` little-endian f32 values 0, 1, 2, ...
pub fn floats(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}
