//! Per-beam n-gram tables for `no_repeat_ngram_size`, built incrementally: each generated
//! token adds at most one n-gram, and a child beam inherits its parent's table by a flat copy.

/// The n-grams one beam has generated, as (hash of the (n-1)-token prefix, start position).
#[derive(Debug, Clone, Default)]
pub struct NgramTable {
    entries: Vec<(u64, u32)>,
}

fn hash_tokens(tokens: &[u32]) -> u64 {
    // FNV-1a over the token ids; collisions are resolved by comparing the tokens themselves.
    tokens.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| (h ^ t as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

impl NgramTable {
    /// Records the n-gram that ends at the last token of `history`, if it is long enough.
    pub fn push(&mut self, history: &[u32], n: usize) {
        if n == 0 || history.len() < n {
            return;
        }
        let start = history.len() - n;
        self.entries.push((hash_tokens(&history[start..start + n - 1]), start as u32));
    }

    /// Appends to `out` every token that would repeat an n-gram of `history`: those that once
    /// followed the last `n - 1` tokens (fairseq's and gpt2_beam.py's rule).
    pub fn banned_into(&self, history: &[u32], n: usize, out: &mut Vec<u32>) {
        if n == 0 || history.len() + 1 < n {
            return;
        }
        let prefix = &history[history.len() + 1 - n..];
        let key = hash_tokens(prefix);
        for &(hash, start) in &self.entries {
            let start = start as usize;
            if hash == key && &history[start..start + n - 1] == prefix {
                out.push(history[start + n - 1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's rule, computed the slow way: rebuild every n-gram of the history.
    fn banned_by_full_scan(history: &[u32], n: usize) -> Vec<u32> {
        let cur = history.len();
        if cur + 1 < n {
            return Vec::new();
        }
        let prefix = &history[cur + 1 - n..];
        history.windows(n).filter(|w| &w[..n - 1] == prefix).map(|w| w[n - 1]).collect()
    }

    #[test]
    fn incremental_table_matches_full_rebuild() {
        // A small alphabet forces many repeats.
        let mut seed = 12345u64;
        for n in 1..=5 {
            let mut history = Vec::new();
            let mut table = NgramTable::default();
            for _ in 0..80 {
                let mut banned = Vec::new();
                table.banned_into(&history, n, &mut banned);
                assert_eq!(banned, banned_by_full_scan(&history, n), "n={n} history={history:?}");
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                history.push((seed >> 60) as u32 % 4);
                table.push(&history, n);
            }
        }
    }

    #[test]
    fn size_zero_bans_nothing() {
        let mut table = NgramTable::default();
        table.push(&[1, 1, 1], 0);
        let mut banned = Vec::new();
        table.banned_into(&[1, 1, 1], 0, &mut banned);
        assert!(banned.is_empty());
    }
}
