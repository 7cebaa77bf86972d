//! Which adapter each row of a forward pass decodes with, as runs of consecutive rows, and the
//! projections computed run by run: each run is multiplied by its adapter's merged copy of the
//! matrix (or the base's), so a row computes exactly what it would in a model merged with its
//! adapter alone. A pass with one run (the base-only case) is one matmul, as without adapters.

use tch::Tensor;

use crate::model::layers::linear;
use crate::model::merged_adapter::BlockOverride;
use crate::model::weights::Linear;
use crate::model::{AdaptedModule, AdapterWeights, ModelError};

/// One run: its adapter's merged blocks (`None` for the base) and its number of rows.
struct Run {
    blocks: Option<Vec<BlockOverride>>,
    rows: i64,
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

    /// `bias + x @ weight` of `module` in block `layer`, each run of rows of `x` with its own
    /// weight.
    pub(crate) fn linear(
        &self,
        layer: usize,
        module: AdaptedModule,
        x: &Tensor,
        base: &Linear,
    ) -> Result<Tensor, ModelError> {
        fn weight<'t>(run: &'t Run, layer: usize, module: AdaptedModule, base: &'t Linear) -> &'t Tensor {
            run.blocks.as_ref().and_then(|blocks| blocks.get(layer)).and_then(|b| b.get(module)).unwrap_or(&base.weight)
        }
        match self.runs.as_slice() {
            [] => linear(x, base),
            [run] => Ok(base.bias.f_addmm(x, weight(run, layer, module, base))?),
            runs => {
                let mut outputs = Vec::with_capacity(runs.len());
                let mut offset = 0;
                for run in runs {
                    outputs
                        .push(base.bias.f_addmm(&x.f_narrow(0, offset, run.rows)?, weight(run, layer, module, base))?);
                    offset += run.rows;
                }
                Ok(Tensor::f_cat(&outputs, 0)?)
            }
        }
    }
}
