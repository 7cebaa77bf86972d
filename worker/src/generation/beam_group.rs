//! The search state of one item: its beams, their histories and scores, and the best finished
//! hypothesis, with gpt2_beam.py's exact rules for candidates and ties.

use lorabeam_core::ValidDecodeParams;

use super::length_normalisation::ScoreWidth;
use super::ngram::NgramTable;

#[derive(Debug, Clone)]
struct Beam {
    /// Generated tokens only (the reference's `history`).
    tokens: Vec<u32>,
    /// Sum of log-probabilities; `-inf` once the beam ended in EOS and was dropped.
    score: f64,
    ngrams: NgramTable,
    /// Distinct tokens of `tokens`, for the repetition penalty.
    distinct: Vec<u32>,
}

/// One row of a top-k result: the parent beam, the chosen token and the new summed score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub parent: usize,
    pub token: u32,
    pub score: f64,
}

pub struct BeamGroup {
    beams: Vec<Beam>,
    best: Option<(f64, Vec<u32>)>,
    finished: bool,
}

impl BeamGroup {
    /// A group before its first token: every beam starts from the same (empty) history.
    pub fn new(params: &ValidDecodeParams) -> Self {
        let empty = Beam { tokens: Vec::new(), score: 0.0, ngrams: NgramTable::default(), distinct: Vec::new() };
        Self { beams: vec![empty; params.beam], best: None, finished: false }
    }

    /// Generated length so far (every beam has the same).
    pub fn len(&self) -> usize {
        self.beams[0].tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn last_tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.beams.iter().map(|b| b.tokens.last().copied().unwrap_or(0))
    }

    pub fn scores(&self) -> impl Iterator<Item = f64> + '_ {
        self.beams.iter().map(|b| b.score)
    }

    /// Tokens whose logits get the repetition penalty, per beam.
    pub fn distinct_tokens(&self, beam: usize) -> &[u32] {
        &self.beams[beam].distinct
    }

    /// Appends to `out` the tokens beam `beam` may not produce next: EOS ids before
    /// `min_length`, and tokens that would repeat an n-gram.
    pub fn banned_into(&self, beam: usize, params: &ValidDecodeParams, out: &mut Vec<u32>) {
        let b = &self.beams[beam];
        if b.tokens.len() < params.min_length {
            out.extend_from_slice(params.eos_token_ids());
        }
        if !b.tokens.is_empty() {
            b.ngrams.banned_into(&b.tokens, params.no_repeat_ngram_size, out);
        }
    }

    /// Applies one step's top-k choices (sorted best first, one per beam), then records
    /// finished hypotheses and decides whether the group is done.
    pub fn advance(&mut self, choices: &[Choice], params: &ValidDecodeParams, width: ScoreWidth) {
        let n = params.no_repeat_ngram_size;
        self.beams = choices
            .iter()
            .map(|c| {
                let mut beam = self.beams[c.parent].clone();
                beam.tokens.push(c.token);
                beam.ngrams.push(&beam.tokens, n);
                if !beam.distinct.contains(&c.token) {
                    beam.distinct.push(c.token);
                }
                beam.score = c.score;
                beam
            })
            .collect();
        let len = self.len();
        // A beam ending in EOS becomes a candidate and is dropped (gpt2_beam.py's
        // `_add_beam_candidate`), in row order; only a strictly better score replaces the best.
        for i in 0..self.beams.len() {
            if params.is_eos(self.beams[i].tokens[len - 1]) {
                self.offer(i, width.normalize(self.beams[i].score, len, params.length_penalty));
                self.beams[i].score = f64::NEG_INFINITY;
            }
        }
        if len == params.eval_len {
            for i in 0..self.beams.len() {
                self.offer(i, width.normalize(self.beams[i].score, len, params.length_penalty));
            }
            self.finished = true;
        } else {
            self.finished = self.no_live_beam_can_win(params, width);
        }
    }

    fn offer(&mut self, beam: usize, score: f64) {
        if self.best.as_ref().is_none_or(|(best, _)| *best < score) {
            self.best = Some((score, self.beams[beam].tokens.clone()));
        }
    }

    /// Exact early finish: true when no live beam can ever strictly beat the best candidate.
    ///
    /// Proof sketch. Log-probabilities are ≤ 0 and float addition rounds monotonically, so a
    /// live beam's sum `s` can only fall: every descendant's sum `s'` satisfies `s' ≤ s ≤ 0`.
    /// A future candidate has length `L` in `[len + 1, eval_len]` and scores
    /// `s' / L^lp`. `L^lp` is monotone in `L` (increasing for `lp ≥ 0`, decreasing for
    /// `lp < 0`), and for a non-positive numerator a larger divisor gives a larger quotient, so
    /// the score is at most `s / D`, with `D` the largest of `(len + 1)^lp` and `eval_len^lp`,
    /// i.e. at most the larger of `normalize(s, len + 1)` and `normalize(s, eval_len)`.
    /// Rounding is monotone in both operands, so this holds for the computed floats too. The
    /// reference replaces its best only on a strictly greater score, so once every bound is
    /// `≤ best`, decoding further can never change the output.
    fn no_live_beam_can_win(&self, params: &ValidDecodeParams, width: ScoreWidth) -> bool {
        let Some((best, _)) = &self.best else {
            return false;
        };
        let len = self.len();
        self.beams.iter().filter(|b| b.score > f64::NEG_INFINITY).all(|b| {
            if b.score > 0.0 {
                return false;
            }
            let lp = params.length_penalty;
            let bound = width.normalize(b.score, len + 1, lp).max(width.normalize(b.score, params.eval_len, lp));
            bound <= *best
        })
    }

    /// The best hypothesis padded with 0 to `eval_len`, as the reference writes `predict`.
    pub fn prediction(&self, eval_len: usize) -> Vec<u32> {
        let mut out = self.best.as_ref().map(|(_, tokens)| tokens.clone()).unwrap_or_default();
        out.resize(eval_len, 0);
        out
    }
}

#[cfg(test)]
mod tests;
