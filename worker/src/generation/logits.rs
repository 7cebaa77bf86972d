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
