//! Which adapter each row of a forward pass decodes with, as runs of consecutive rows, and the
//! projections computed for them. A pass with no adapter rows is one matmul, as without
//! adapters. Low-rank adapters keep that one base matmul over every row and add each run's
//! update on its rows; merged adapters multiply each run by its own copy of the matrix.
//! Either way a row computes the same operations on the same values whatever else shares the
//! pass, so its output does not depend on the batch around it.

use tch::Tensor;

use crate::model::adapter::{AdaptedWeight, BlockOverride};
use crate::model::layers::linear;
use crate::model::weights::Linear;
use crate::model::{AdaptedModule, AdapterWeights, ModelError};

/// One run: its adapter's blocks (`None` for the base) and its number of rows.
struct Run {
    blocks: Option<Vec<BlockOverride>>,
    rows: i64,
}

impl Run {
    /// What this run's adapter does to `module` of block `layer`; `None` is the base matrix.
    fn weight(&self, layer: usize, module: AdaptedModule) -> Option<&AdaptedWeight> {
        self.blocks.as_ref().and_then(|blocks| blocks.get(layer)).and_then(|b| b.get(module))
    }
}

/// The runs of one forward pass, borrowed from the adapters once for all its layers.
pub(crate) struct AdapterRows {
    runs: Vec<Run>,
}

impl AdapterRows {
    /// Every row on the base (or on the model as loaded).
    pub(crate) fn base() -> Self {
        Self { runs: Vec::new() }
    }

    /// Runs from consecutive groups of rows, `(adapter, rows)` each; neighbours with the same
    /// adapter join one run. `groups` empty, or all on the base, is `base()`.
    pub(crate) fn new<'a>(groups: impl IntoIterator<Item = (Option<&'a AdapterWeights>, i64)>) -> Self {
        let mut joined: Vec<(Option<&AdapterWeights>, i64)> = Vec::new();
        for (adapter, rows) in groups {
            match joined.last_mut() {
                Some((last, n)) if *last == adapter => *n += rows,
                _ => joined.push((adapter, rows)),
            }
        }
        if joined.iter().all(|(adapter, _)| adapter.is_none()) {
            return Self::base();
        }
        let runs =
            joined.into_iter().map(|(a, rows)| Run { blocks: a.map(AdapterWeights::borrow_blocks), rows }).collect();
        Self { runs }
    }

    /// `bias + x @ weight` of `module` in block `layer`, each run of rows of `x` with its
    /// adapter's update.
    pub(crate) fn linear(
        &self,
        layer: usize,
        module: AdaptedModule,
        x: &Tensor,
        base: &Linear,
    ) -> Result<Tensor, ModelError> {
        let merged = |run: &Run| matches!(run.weight(layer, module), Some(AdaptedWeight::Merged(_)));
        if !self.runs.iter().any(merged) {
            // The base over every row, then each low-rank run's update on its rows, in place.
            let out = linear(x, base)?;
            let mut offset = 0;
            for run in &self.runs {
                if let Some(AdaptedWeight::LowRank { a_t, b_t }) = run.weight(layer, module) {
                    add_update(&out, &x.f_narrow(0, offset, run.rows)?, offset, a_t, b_t)?;
                }
                offset += run.rows;
            }
            return Ok(out);
        }
        if let [run] = self.runs.as_slice() {
            return run_linear(run, layer, module, x, base);
        }
        let mut outputs = Vec::with_capacity(self.runs.len());
        let mut offset = 0;
        for run in &self.runs {
            outputs.push(run_linear(run, layer, module, &x.f_narrow(0, offset, run.rows)?, base)?);
            offset += run.rows;
        }
        Ok(Tensor::f_cat(&outputs, 0)?)
    }
}

/// The projection of one run's rows `x` alone, with its adapter's matrix.
fn run_linear(run: &Run, layer: usize, module: AdaptedModule, x: &Tensor, base: &Linear) -> Result<Tensor, ModelError> {
    match run.weight(layer, module) {
        None => linear(x, base),
        Some(AdaptedWeight::Merged(weight)) => Ok(base.bias.f_addmm(x, weight)?),
        Some(AdaptedWeight::LowRank { a_t, b_t }) => {
            let out = linear(x, base)?;
            add_update(&out, x, 0, a_t, b_t)?;
            Ok(out)
        }
    }
}

/// `out[offset..offset + rows] += (x a_t) b_t` for the `rows` rows of `x`.
fn add_update(out: &Tensor, x: &Tensor, offset: i64, a_t: &Tensor, b_t: &Tensor) -> Result<(), ModelError> {
    let mut rows = out.f_narrow(0, offset, x.size()[0])?;
    let _ = rows.f_addmm_(&x.f_mm(a_t)?, b_t)?;
    Ok(())
}
