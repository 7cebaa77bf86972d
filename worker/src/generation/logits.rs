//! gpt2_beam.py's `_postprocess_next_token_scores`, batched: the repetition penalty, the
//! `min_length` EOS mask and n-gram bans are gathered on the CPU from each beam's token
//! history, then applied to the logits with one indexed read and two indexed writes.

use lorabeam_core::ValidDecodeParams;
use tch::Tensor;

use super::beam_group::BeamGroup;
use crate::model::ModelError;

/// `(row, token)` pairs, kept as two parallel index vectors.
#[derive(Default)]
struct Cells {
    rows: Vec<i64>,
    tokens: Vec<i64>,
}

impl Cells {
    fn push_all(&mut self, row: usize, tokens: &[u32]) {
        self.rows.extend(std::iter::repeat_n(row as i64, tokens.len()));
        self.tokens.extend(tokens.iter().map(|&t| t as i64));
    }

    fn indices(&self, device: tch::Device) -> Result<[Option<Tensor>; 2], ModelError> {
        Ok([
            Some(Tensor::f_from_slice(&self.rows)?.f_to_device(device)?),
            Some(Tensor::f_from_slice(&self.tokens)?.f_to_device(device)?),
        ])
    }
}

/// Processes `logits (rows, vocab)` in place for `groups`, whose first `rows_per_group` beams
/// are its rows in order (1 for a group's first step, when all its beams are still equal).
/// Returns the seconds spent gathering the bans on the CPU.
pub fn process_logits<'a>(
    logits: &mut Tensor,
    groups: impl Iterator<Item = &'a BeamGroup>,
    rows_per_group: usize,
    params: &ValidDecodeParams,
) -> Result<f64, ModelError> {
    let host = std::time::Instant::now();
    let mut penalised = Cells::default();
    let mut banned = Cells::default();
    let mut scratch = Vec::new();
    let mut row = 0;
    for group in groups {
        for beam in 0..rows_per_group {
            if params.repetition_penalty != 1.0 {
                penalised.push_all(row, group.distinct_tokens(beam));
            }
            scratch.clear();
            group.banned_into(beam, params, &mut scratch);
            banned.push_all(row, &scratch);
            row += 1;
        }
    }
    let host_seconds = host.elapsed().as_secs_f64();
    let device = logits.device();
    if !penalised.rows.is_empty() {
        // CTRL's penalty as `_enforce_repetition_penalty_`: negative logits are multiplied,
        // the others divided.
        let index = penalised.indices(device)?;
        let values = logits.f_index(&index)?;
        let p = params.repetition_penalty;
        let penalised_values = values.f_mul_scalar(p)?.f_where_self(&values.f_lt(0.0)?, &values.f_div_scalar(p)?)?;
        let _ = logits.f_index_put_(&index, &penalised_values, false)?;
    }
    if !banned.rows.is_empty() {
        let index = banned.indices(device)?;
        let minus_inf = Tensor::f_from_slice(&[f64::NEG_INFINITY])?.f_to_kind(logits.kind())?.f_to_device(device)?;
        let _ = logits.f_index_put_(&index, &minus_inf, false)?;
    }
    Ok(host_seconds)
}

#[cfg(test)]
mod tests {
    use lorabeam_core::{DecodeParams, ModelLimits};
    use tch::Kind;

    use super::*;
    use crate::generation::beam_group::Choice;
    use crate::generation::length_normalisation::ScoreWidth;

    fn params(beam: usize, change: impl FnOnce(&mut DecodeParams)) -> ValidDecodeParams {
        let mut p = DecodeParams { beam, eval_len: 8, seq_len: 16, no_repeat_ngram_size: 0, ..Default::default() };
        change(&mut p);
        p.validate(ModelLimits::GPT2).expect("valid")
    }

    /// A group whose beams generated `histories` (one per beam, all of one length).
    fn group(p: &ValidDecodeParams, histories: &[&[u32]]) -> BeamGroup {
        let mut group = BeamGroup::new(p);
        for step in 0..histories[0].len() {
            let choices: Vec<Choice> =
                histories.iter().enumerate().map(|(b, h)| Choice { parent: b, token: h[step], score: -1.0 }).collect();
            group.advance(&choices, p, ScoreWidth::F64);
        }
        group
    }

    /// Distinct values, negative, zero and positive, on every cell.
    fn table(rows: usize, width: usize) -> Vec<Vec<f64>> {
        (0..rows).map(|r| (0..width).map(|t| ((r * 7 + t * 3) % 11) as f64 - 5.0).collect()).collect()
    }

    /// Runs `process_logits` on `rows` in `kind` and reads the result back.
    fn processed(
        rows: &[Vec<f64>],
        kind: Kind,
        groups: &[BeamGroup],
        per_group: usize,
        p: &ValidDecodeParams,
    ) -> Vec<Vec<f64>> {
        let flat: Vec<f64> = rows.concat();
        let mut logits = Tensor::from_slice(&flat).view([rows.len() as i64, -1]).to_kind(kind);
        process_logits(&mut logits, groups.iter(), per_group, p).expect("process");
        assert_eq!(logits.kind(), kind);
        let out = Vec::<f64>::try_from(logits.to_kind(Kind::Double).flatten(0, -1)).expect("read");
        out.chunks(rows[0].len()).map(<[f64]>::to_vec).collect()
    }

    /// CTRL's penalty: a negative logit is multiplied, any other divided (zero stays zero).
    #[test]
    fn repetition_penalty_multiplies_negative_logits_and_divides_the_others() {
        let p = params(1, |p| p.repetition_penalty = 2.0);
        let mut rows = table(1, 16);
        (rows[0][2], rows[0][3], rows[0][4]) = (3.0, -1.5, 0.0);
        let out = processed(&rows, Kind::Double, &[group(&p, &[&[2, 3, 4]])], 1, &p);
        let mut expected = rows.clone();
        (expected[0][2], expected[0][3], expected[0][4]) = (1.5, -3.0, 0.0);
        assert_eq!(out, expected);
    }

    /// The penalty goes once on each distinct generated token, however often it appears.
    #[test]
    fn repetition_penalty_applies_once_per_distinct_token() {
        let p = params(1, |p| p.repetition_penalty = 2.0);
        let mut rows = table(1, 16);
        rows[0][5] = 4.0;
        let out = processed(&rows, Kind::Double, &[group(&p, &[&[5, 5, 5]])], 1, &p);
        assert_eq!(out[0][5], 2.0);
    }

    /// Each row is penalised and banned by its own beam's history, in f32 as in f64.
    #[test]
    fn each_row_follows_its_own_beams_history() {
        let p = params(2, |p| (p.repetition_penalty, p.no_repeat_ngram_size) = (2.0, 2));
        let histories: [&[u32]; 2] = [&[1, 2, 1], &[3, 4, 3]];
        let rows = table(2, 16);
        for kind in [Kind::Double, Kind::Float] {
            let out = processed(&rows, kind, &[group(&p, &histories)], 2, &p);
            let mut expected = rows.clone();
            for (row, tokens) in [(0, [1, 2]), (1, [3, 4])] {
                for t in tokens {
                    let x = &mut expected[row][t];
                    *x = if *x < 0.0 { *x * 2.0 } else { *x / 2.0 };
                }
            }
            // Bigrams: row 0 saw (1, 2) and ends in 1, row 1 saw (3, 4) and ends in 3.
            expected[0][2] = f64::NEG_INFINITY;
            expected[1][4] = f64::NEG_INFINITY;
            assert_eq!(out, expected, "{kind:?}");
        }
    }

    /// fairseq's rule: a token that once followed the last `n - 1` tokens is banned; nothing
    /// else changes.
    #[test]
    fn ngram_bans_only_the_tokens_that_would_repeat_an_ngram() {
        let p = params(1, |p| p.no_repeat_ngram_size = 3);
        let rows = table(1, 16);
        let out = processed(&rows, Kind::Double, &[group(&p, &[&[1, 2, 3, 1, 2, 7, 1, 2]])], 1, &p);
        let mut expected = rows.clone();
        expected[0][3] = f64::NEG_INFINITY;
        expected[0][7] = f64::NEG_INFINITY;
        assert_eq!(out, expected);
    }

    /// Before `min_length` tokens every EOS id (50256 and the extra ones) is banned on every
    /// row; from `min_length` on none is.
    #[test]
    fn min_length_bans_every_eos_id_until_reached() {
        let p = params(2, |p| (p.min_length, p.extra_eos_token_ids) = (2, vec![628, 13]));
        let rows = table(2, 50257);
        for (len, banned) in [(0, true), (1, true), (2, false), (3, false)] {
            let history: Vec<u32> = (20..20 + len).collect();
            let out = processed(&rows, Kind::Double, &[group(&p, &[&history, &history])], 2, &p);
            let mut expected = rows.clone();
            if banned {
                for row in &mut expected {
                    for eos in [50256, 628, 13] {
                        row[eos] = f64::NEG_INFINITY;
                    }
                }
            }
            assert!(out == expected, "{len} tokens generated");
        }
    }

    /// Row `i * rows_per_group + b` is beam `b` of group `i`: at a group's first step
    /// (`rows_per_group` 1) its one row is its beam 0.
    #[test]
    fn rows_are_each_groups_first_beams_in_order() {
        let p = params(2, |p| p.no_repeat_ngram_size = 1);
        let groups = [group(&p, &[&[1], &[2]]), group(&p, &[&[3], &[4]])];
        let rows = table(4, 8);
        let ban = |rows: &[Vec<f64>], cells: &[(usize, usize)]| {
            let mut expected = rows.to_vec();
            cells.iter().for_each(|&(r, t)| expected[r][t] = f64::NEG_INFINITY);
            expected
        };
        let all = processed(&rows, Kind::Double, &groups, 2, &p);
        assert_eq!(all, ban(&rows, &[(0, 1), (1, 2), (2, 3), (3, 4)]));
        let first = processed(&rows[..2], Kind::Double, &groups, 1, &p);
        assert_eq!(first, ban(&rows[..2], &[(0, 1), (1, 3)]));
    }
}
