//! The SubmitJob stream's framing: a `JobSpec`, the JSONL in `RecordChunk`s, then a `DataEnd`
//! with the byte count and checksum of every chunk, so that a stream cut short (a client's read
//! error, a dropped connection) is told apart from a whole one and refused.

use crate::v1::{DataEnd, JobSpec, RecordChunk, SubmitItem, SubmitJobRequest};

/// The running count and FNV-1a 64 checksum of a submission's bytes: a guard against
/// truncation and reordering, not against a forger (who could compute it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDigest {
    bytes: u64,
    fnv1a64: u64,
}

impl Default for DataDigest {
    fn default() -> Self {
        Self { bytes: 0, fnv1a64: 0xcbf2_9ce4_8422_2325 }
    }
}

impl DataDigest {
    pub fn update(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            self.fnv1a64 = (self.fnv1a64 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.bytes += chunk.len() as u64;
    }

    /// The `DataEnd` a sender ends with.
    pub fn end(&self) -> DataEnd {
        DataEnd { bytes: self.bytes, fnv1a64: self.fnv1a64 }
    }

    /// Whether what arrived is what the sender says it sent.
    pub fn matches(&self, end: &DataEnd) -> bool {
        self.end() == *end
    }
}

/// A whole submission as messages: the spec, `jsonl` in chunks of at most `chunk_bytes`, and
/// its end.
pub fn submission_messages(spec: JobSpec, jsonl: &[u8], chunk_bytes: usize) -> Vec<SubmitJobRequest> {
    let mut digest = DataDigest::default();
    let mut messages = vec![SubmitJobRequest { item: Some(SubmitItem::Spec(spec)) }];
    for chunk in jsonl.chunks(chunk_bytes.max(1)) {
        digest.update(chunk);
        messages.push(SubmitJobRequest { item: Some(SubmitItem::Chunk(RecordChunk { jsonl: chunk.to_vec() })) });
    }
    messages.push(SubmitJobRequest { item: Some(SubmitItem::End(digest.end())) });
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_fnv1a_64_and_sees_order_and_length() {
        let mut digest = DataDigest::default();
        digest.update(b"a");
        assert_eq!(digest.end(), DataEnd { bytes: 1, fnv1a64: 0xaf63_dc4c_8601_ec8c }, "FNV-1a 64 of \"a\"");
        let of = |parts: &[&[u8]]| {
            let mut d = DataDigest::default();
            parts.iter().for_each(|p| d.update(p));
            d.end()
        };
        assert_eq!(of(&[b"ab", b"c"]), of(&[b"a", b"bc"]), "chunking does not matter");
        assert_ne!(of(&[b"abc"]), of(&[b"acb"]), "order does");
        assert_ne!(of(&[b"abc"]), of(&[b"ab"]), "a cut does");
    }

    #[test]
    fn a_submission_ends_with_its_digest() {
        let messages = submission_messages(JobSpec::default(), b"0123456789", 4);
        assert_eq!(messages.len(), 1 + 3 + 1);
        let Some(SubmitItem::End(end)) = &messages[4].item else { panic!("the last message is the end") };
        assert_eq!(end.bytes, 10);
    }
}
