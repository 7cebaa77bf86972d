//! Zip archives written byte by byte from structured fields, so that any header field can
//! lie: local and central sizes, CRCs, offsets, zip64 extra fields claiming up to 2^63 bytes,
//! the end records. Left at `Actual`, every field is what an honest writer puts there, and a
//! `ZipIn` of the right entries is a valid `torch.save` archive.

use crate::pickle_prog::{Op, Writer};
use crate::tape::{seed, Blob};
use crate::{tape_enum, tape_struct};

tape_enum! {
    /// A 32-bit (or, in the end record's counts, 16-bit) header field.
    pub enum Size32 {
        Actual,
        /// 0xFFFFFFFF: "see the zip64 field".
        Max,
        Value { v: u32 },
    }
}

tape_enum! {
    pub enum Size64 {
        Actual,
        Pow2 { exp: u8 },
        Value { v: u64 },
    }
}

tape_struct! {
    /// A zip64 extended-information extra field; the fields present are written in the spec's
    /// order. With `mark` the matching 32-bit fields left `Actual` say 0xFFFFFFFF, as a zip64
    /// writer does.
    pub struct Zip64In {
        pub uncompressed: Option<Size64>,
        pub compressed: Option<Size64>,
        pub offset: Option<Size64>,
        pub mark: bool,
    }
}

tape_struct! {
    pub struct Header {
        pub crc: Size32,
        pub compressed: Size32,
        pub uncompressed: Size32,
        pub zip64: Option<Zip64In>,
    }
}

tape_enum! {
    pub enum EntryName {
        DataPkl,
        Byteorder,
        Version,
        Data { key: u8 },
        /// `<prefix>/data.pkl` for a prefix from a short list (the reader takes any one-level one).
        OtherPkl { which: u8 },
        Raw { name: Blob },
    }
}

tape_enum! {
    pub enum Content {
        /// A pickle of these opcodes (between PROTO 2 and STOP).
        Pickle { ops: Vec<Op> },
        Little,
        Big,
        Raw { bytes: Blob },
        Zeros { len: u16 },
    }
}

tape_enum! {
    pub enum Method {
        Stored,
        Deflated,
        Other { v: u16 },
    }
}

tape_struct! {
    pub struct EntryIn {
        pub name: EntryName,
        pub content: Content,
        pub method: Method,
        pub flags: u16,
        pub local: Header,
        pub central: Header,
        /// Where the central header says the local header starts.
        pub offset: Size32,
        /// Bytes written after the entry's data.
        pub gap: Blob,
    }
}

tape_struct! {
    pub struct Zip64End {
        pub entries: Size64,
        pub cd_size: Size64,
        pub cd_offset: Size64,
        /// Where the locator says the zip64 end record is.
        pub record_offset: Size64,
    }
}

tape_struct! {
    pub struct EndIn {
        pub entries: Size32,
        pub cd_size: Size32,
        pub cd_offset: Size32,
        /// Which entries the central directory lists, by index modulo their count; all, in
        /// order, when absent.
        pub order: Option<Vec<u8>>,
        pub zip64: Option<Zip64End>,
        pub comment: Blob,
    }
}

tape_struct! {
    pub struct ZipIn {
        pub end: EndIn,
        pub entries: Vec<EntryIn>,
    }
}

impl Size32 {
    fn or(&self, actual: u32) -> u32 {
        match self {
            Size32::Actual => actual,
            Size32::Max => u32::MAX,
            Size32::Value { v } => *v,
        }
    }
}

impl Size64 {
    fn or(&self, actual: u64) -> u64 {
        match self {
            Size64::Actual => actual,
            Size64::Pow2 { exp } => 1u64 << (exp % 64),
            Size64::Value { v } => *v,
        }
    }
}

impl EntryName {
    fn text(&self) -> Vec<u8> {
        const PREFIXES: &[&str] = &["checkpoint", "lora", "archive/sub", ""];
        match self {
            EntryName::DataPkl => b"archive/data.pkl".to_vec(),
            EntryName::Byteorder => b"archive/byteorder".to_vec(),
            EntryName::Version => b"archive/version".to_vec(),
            EntryName::Data { key } => format!("archive/data/{key}").into_bytes(),
            EntryName::OtherPkl { which } => {
                let prefix = PREFIXES[usize::from(*which) % PREFIXES.len()];
                format!("{prefix}/data.pkl").trim_start_matches('/').as_bytes().to_vec()
            }
            EntryName::Raw { name } => name.0.clone(),
        }
    }
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Pickle { ops } => {
                let mut w = Writer(vec![0x80, 2]);
                ops.iter().for_each(|op| w.op(op));
                w.0.push(b'.');
                w.0
            }
            Content::Little => b"little".to_vec(),
            Content::Big => b"big".to_vec(),
            Content::Raw { bytes } => bytes.0.clone(),
            Content::Zeros { len } => vec![0; usize::from(*len)],
        }
    }
}

fn le16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn le32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn le64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// One entry's fields as both of its headers share them.
struct Fields {
    name: Vec<u8>,
    method: u16,
    flags: u16,
    crc: u32,
    len: u64,
    offset: u64,
}

/// The header fields from `crc` to the extra field's length, then the name and the extra.
/// `offset` is only written in a central header's zip64 field.
fn sizes_name_extra(out: &mut Vec<u8>, h: &Header, f: &Fields, central: bool) -> Vec<u8> {
    let z = h.zip64.as_ref();
    let marked = |field: Option<&Option<Size64>>| z.is_some_and(|z| z.mark) && field.is_some_and(Option::is_some);
    let size32 =
        |s: &Size32, field| if matches!(s, Size32::Actual) && marked(field) { u32::MAX } else { s.or(f.len as u32) };
    le32(out, h.crc.or(f.crc));
    le32(out, size32(&h.compressed, z.map(|z| &z.compressed)));
    le32(out, size32(&h.uncompressed, z.map(|z| &z.uncompressed)));
    let mut extra = Vec::new();
    if let Some(z) = z {
        let mut fields = Vec::new();
        z.uncompressed.iter().for_each(|s| le64(&mut fields, s.or(f.len)));
        z.compressed.iter().for_each(|s| le64(&mut fields, s.or(f.len)));
        if central {
            z.offset.iter().for_each(|s| le64(&mut fields, s.or(f.offset)));
        }
        le16(&mut extra, 1);
        le16(&mut extra, fields.len() as u16);
        extra.extend_from_slice(&fields);
    }
    le16(out, f.name.len().min(0xffff) as u16);
    le16(out, extra.len() as u16);
    extra
}

impl ZipIn {
    /// The archive's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut fields = Vec::new();
        for e in &self.entries {
            let data = e.content.bytes();
            let method = match e.method {
                Method::Stored => 0,
                Method::Deflated => 8,
                Method::Other { v } => v,
            };
            let f = Fields {
                name: e.name.text(),
                method,
                flags: e.flags,
                crc: crc32fast::hash(&data),
                len: data.len() as u64,
                offset: out.len() as u64,
            };
            le32(&mut out, 0x0403_4b50);
            le16(&mut out, 45);
            le16(&mut out, f.flags);
            le16(&mut out, f.method);
            le32(&mut out, 0); // time and date
            let extra = sizes_name_extra(&mut out, &e.local, &f, false);
            out.extend_from_slice(&f.name);
            out.extend_from_slice(&extra);
            out.extend_from_slice(&data);
            out.extend_from_slice(&e.gap.0);
            fields.push(f);
        }
        let cd_start = out.len() as u64;
        let order: Vec<usize> = match &self.end.order {
            Some(order) if !self.entries.is_empty() => {
                order.iter().map(|&i| usize::from(i) % self.entries.len()).collect()
            }
            Some(_) => vec![],
            None => (0..self.entries.len()).collect(),
        };
        for &i in &order {
            let (e, f) = (&self.entries[i], &fields[i]);
            le32(&mut out, 0x0201_4b50);
            le16(&mut out, 45); // made by
            le16(&mut out, 45); // needed
            le16(&mut out, f.flags);
            le16(&mut out, f.method);
            le32(&mut out, 0);
            let extra = sizes_name_extra(&mut out, &e.central, f, true);
            le16(&mut out, 0); // comment length
            le16(&mut out, 0); // disk
            le16(&mut out, 0); // internal attributes
            le32(&mut out, 0); // external attributes
            let offset_marked = e.central.zip64.as_ref().is_some_and(|z| z.mark && z.offset.is_some());
            let offset = if matches!(e.offset, Size32::Actual) && offset_marked {
                u32::MAX
            } else {
                e.offset.or(f.offset as u32)
            };
            le32(&mut out, offset);
            out.extend_from_slice(&f.name);
            out.extend_from_slice(&extra);
        }
        let cd_size = out.len() as u64 - cd_start;
        let end = &self.end;
        if let Some(z) = &end.zip64 {
            let record = out.len() as u64;
            le32(&mut out, 0x0606_4b50);
            le64(&mut out, 44);
            le16(&mut out, 45);
            le16(&mut out, 45);
            le32(&mut out, 0);
            le32(&mut out, 0);
            le64(&mut out, z.entries.or(order.len() as u64));
            le64(&mut out, z.entries.or(order.len() as u64));
            le64(&mut out, z.cd_size.or(cd_size));
            le64(&mut out, z.cd_offset.or(cd_start));
            le32(&mut out, 0x0706_4b50);
            le32(&mut out, 0);
            le64(&mut out, z.record_offset.or(record));
            le32(&mut out, 1);
        }
        le32(&mut out, 0x0605_4b50);
        le32(&mut out, 0); // disk numbers
        let entries = end.entries.or(order.len() as u32) as u16;
        le16(&mut out, entries);
        le16(&mut out, entries);
        le32(&mut out, end.cd_size.or(cd_size as u32));
        le32(&mut out, end.cd_offset.or(cd_start as u32));
        le16(&mut out, end.comment.0.len() as u16);
        out.extend_from_slice(&end.comment.0);
        out
    }
}

fn honest() -> Header {
    Header { crc: Size32::Actual, compressed: Size32::Actual, uncompressed: Size32::Actual, zip64: None }
}

fn entry(name: EntryName, content: Content) -> EntryIn {
    EntryIn {
        name,
        content,
        method: Method::Stored,
        flags: 0,
        local: honest(),
        central: honest(),
        offset: Size32::Actual,
        gap: Blob::default(),
    }
}

/// A valid torch.save archive of one float tensor of four elements.
pub fn valid_archive() -> ZipIn {
    let ops = crate::pickle_prog::state_dict_program(4)
        .into_iter()
        .filter_map(|item| match item {
            crate::pickle_prog::Item::Op { op } => Some(op),
            crate::pickle_prog::Item::Repeat { .. } => None,
        })
        .collect();
    ZipIn {
        end: EndIn {
            entries: Size32::Actual,
            cd_size: Size32::Actual,
            cd_offset: Size32::Actual,
            order: None,
            zip64: None,
            comment: Blob::default(),
        },
        entries: vec![
            entry(EntryName::DataPkl, Content::Pickle { ops }),
            entry(EntryName::Byteorder, Content::Little),
            entry(
                EntryName::Data { key: 0 },
                Content::Raw { bytes: Blob([0, 0, 0, 0, 0, 0, 0, 63, 0, 0, 128, 63, 0, 0, 192, 63].to_vec()) },
            ),
            entry(EntryName::Version, Content::Raw { bytes: Blob::text("3\n") }),
        ],
    }
}

/// Seeds: the valid archive, and the same with honest zip64 fields (sizes 0xFFFFFFFF in the
/// headers, the real ones in zip64 extras, and a zip64 end record), which still reads. The
/// fuzzer has to make a zip64 size lie.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let valid = valid_archive();
    let mut zip64 = valid_archive();
    for e in &mut zip64.entries {
        let z =
            Zip64In { uncompressed: Some(Size64::Actual), compressed: Some(Size64::Actual), offset: None, mark: true };
        e.local.zip64 = Some(z.clone());
        e.central.zip64 = Some(Zip64In { offset: Some(Size64::Actual), ..z });
    }
    zip64.end.zip64 = Some(Zip64End {
        entries: Size64::Actual,
        cd_size: Size64::Actual,
        cd_offset: Size64::Actual,
        record_offset: Size64::Actual,
    });
    crate::expect_one_tensor(&valid.bytes());
    crate::expect_one_tensor(&zip64.bytes());
    vec![("valid", seed(&valid)), ("zip64", seed(&zip64))]
}
