//! An adapter ready to decode with, on the model's device and in its precision, in the form
//! `--adapter-math` asks for:
//! - low-rank: for each adapted matrix its factors, fused into one pair with the scaling
//!   folded in, that rows add to the base's product;
//! - merged: copies of only the base matrices it adapts, with its update merged in f64 and cast,
//!   exactly as `--init_checkpoint` merges loralib at load, so its rows compute what a model
//!   merged with that adapter alone computes.

use std::sync::{Arc, Mutex};

use tch::{Kind, Tensor};

use super::load::Adapter;
use super::math::AdapterMath;
use super::matrix::{AdaptedMatrix, AdaptedModule};
use crate::model::lora::add_low_rank;
use crate::model::{Gpt2, ModelError};

/// One adapted matrix, ready for rows to use.
pub(crate) enum AdaptedWeight {
    /// The base matrix `(in, out)` with the update merged in.
    Merged(Tensor),
    /// The update as `a_t (in, R)` and `b_t (R, out)`, the scaling folded into `b_t`: rows add
    /// `(x a_t) b_t` to the base's product. loralib's q and v parts are one pair, `b_t` zero
    /// on the columns a part does not reach.
    LowRank { a_t: Tensor, b_t: Tensor },
}

impl AdaptedWeight {
    fn shallow_clone(&self) -> Self {
        match self {
            Self::Merged(w) => Self::Merged(w.shallow_clone()),
            Self::LowRank { a_t, b_t } => Self::LowRank { a_t: a_t.shallow_clone(), b_t: b_t.shallow_clone() },
        }
    }

    fn numel(&self) -> usize {
        match self {
            Self::Merged(w) => w.numel(),
            Self::LowRank { a_t, b_t } => a_t.numel() + b_t.numel(),
        }
    }
}

/// One block's adapted matrices, indexed by `AdaptedModule::index`; `None` is the base's.
#[derive(Default)]
pub(crate) struct BlockOverride {
    modules: [Option<AdaptedWeight>; AdaptedModule::COUNT],
}

impl BlockOverride {
    /// What this adapter does to `module`, if it changes it.
    pub fn get(&self, module: AdaptedModule) -> Option<&AdaptedWeight> {
        self.modules[module.index()].as_ref()
    }

    fn set(&mut self, module: AdaptedModule, weight: AdaptedWeight) {
        self.modules[module.index()] = Some(weight);
    }

    fn shallow_clone(&self) -> Self {
        Self { modules: self.modules.each_ref().map(|w| w.as_ref().map(AdaptedWeight::shallow_clone)) }
    }
}

/// The base matrix with `matrix`'s update merged in f64, cast back to the base's precision.
fn merged_copy(base: &Tensor, matrix: &AdaptedMatrix) -> Result<Tensor, ModelError> {
    // A copy always: for an f64 model on the CPU the conversions are no-ops that would hand
    // back the base's own storage, and the merge below writes in place.
    let merged = base.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?.f_detach_copy()?;
    for part in &matrix.parts {
        add_low_rank(&merged, part.column, &part.a, &part.b, matrix.scaling)?;
    }
    Ok(merged.f_to_kind(base.kind())?.f_to_device(base.device())?)
}

/// `matrix`'s parts as one factor pair over all the base's output columns: the parts' `A`
/// stacked, and `s B` placed at each part's columns and rank rows (zero elsewhere), built in
/// f64 and cast to the base's precision and device.
fn fused_factors(target: &PrepareTarget, matrix: &AdaptedMatrix) -> Result<AdaptedWeight, ModelError> {
    let (n_in, n_out) = matrix.module.shape(target.n_embd as i64);
    let rank: i64 = matrix.parts.iter().map(|p| p.a.size()[0]).sum();
    let opts = (Kind::Double, tch::Device::Cpu);
    let a = Tensor::f_zeros([rank, n_in], opts)?;
    let b = Tensor::f_zeros([n_out, rank], opts)?;
    let mut offset = 0;
    for part in &matrix.parts {
        let (r, out) = (part.a.size()[0], part.b.size()[0]);
        a.f_narrow(0, offset, r)?.f_copy_(&part.a)?;
        b.f_narrow(0, part.column, out)?.f_narrow(1, offset, r)?.f_copy_(&part.b.f_mul_scalar(matrix.scaling)?)?;
        offset += r;
    }
    let place = |t: Tensor| -> Result<Tensor, ModelError> {
        Ok(t.f_transpose(0, 1)?.f_contiguous()?.f_to_kind(target.kind)?.f_to_device(target.device)?)
    };
    Ok(AdaptedWeight::LowRank { a_t: place(a)?, b_t: place(b)? })
}

/// An adapter prepared for one model. Cloning is cheap (shared); two are equal when their names
/// are, so one name must mean one adapter within a process. It is `Send` and `Sync`: the
/// tensors (which libtorch lets move but not share) sit behind a mutex that a forward pass
/// takes once, to borrow them.
#[derive(Clone)]
pub struct AdapterWeights {
    name: Arc<str>,
    bytes: usize,
    blocks: Arc<Mutex<Vec<BlockOverride>>>,
}

/// What preparing an adapter in the low-rank form needs of its model: its shape, precision and
/// device, not its weights. Plain values, so the worker's adapter loader thread prepares such
/// adapters whole, and the engine thread never stops its batch for one.
#[derive(Debug, Clone, Copy)]
pub struct PrepareTarget {
    n_embd: usize,
    n_layer: usize,
    math: AdapterMath,
    kind: Kind,
    device: tch::Device,
    value_bytes: usize,
}

impl PrepareTarget {
    pub fn of(model: &Gpt2) -> Self {
        let config = model.config();
        Self {
            n_embd: config.n_embd,
            n_layer: config.n_layer,
            math: model.adapter_math(),
            kind: model.precision().kind(),
            device: model.device(),
            value_bytes: model.precision().bytes(),
        }
    }

    fn check(&self, adapter: &Adapter, name: &str) -> Result<(), ModelError> {
        if adapter.base_shape != (self.n_embd, self.n_layer) {
            return Err(ModelError::AdapterBaseMismatch {
                name: name.into(),
                adapter_embd: adapter.base_shape.0,
                adapter_layers: adapter.base_shape.1,
                model_embd: self.n_embd,
                model_layers: self.n_layer,
            });
        }
        Ok(())
    }
}

impl AdapterWeights {
    /// Prepares `adapter` for `model`, in the form the model's `--adapter-math` asks for.
    pub fn prepare(model: &Gpt2, adapter: &Adapter, name: &str) -> Result<AdapterWeights, ModelError> {
        let target = PrepareTarget::of(model);
        target.check(adapter, name)?;
        let blocks_in = &model.weights().blocks;
        let mut blocks: Vec<BlockOverride> = blocks_in.iter().map(|_| BlockOverride::default()).collect();
        let mut bytes = 0;
        for matrix in &adapter.matrices {
            let base = &blocks_in[matrix.layer].adaptable(matrix.module).weight;
            let weight = match target.math {
                AdapterMath::Merged => AdaptedWeight::Merged(merged_copy(base, matrix)?),
                AdapterMath::LowRank => fused_factors(&target, matrix)?,
            };
            bytes += weight.numel() * target.value_bytes;
            blocks[matrix.layer].set(matrix.module, weight);
        }
        Ok(AdapterWeights { name: name.into(), bytes, blocks: Arc::new(Mutex::new(blocks)) })
    }

    /// Prepares `adapter` without the model, when its math needs none of the model's weights
    /// (the low-rank form); `None` for merged copies, which the model's owner must prepare.
    pub fn prepare_apart(
        target: &PrepareTarget,
        adapter: &Adapter,
        name: &str,
    ) -> Option<Result<AdapterWeights, ModelError>> {
        if target.math != AdapterMath::LowRank {
            return None;
        }
        let prepared = target.check(adapter, name).and_then(|()| {
            let mut blocks: Vec<BlockOverride> = (0..target.n_layer).map(|_| BlockOverride::default()).collect();
            let mut bytes = 0;
            for matrix in &adapter.matrices {
                let weight = fused_factors(target, matrix)?;
                bytes += weight.numel() * target.value_bytes;
                let block = blocks.get_mut(matrix.layer).ok_or(ModelError::AdapterBaseMismatch {
                    name: name.into(),
                    adapter_embd: adapter.base_shape.0,
                    adapter_layers: matrix.layer + 1,
                    model_embd: target.n_embd,
                    model_layers: target.n_layer,
                })?;
                block.set(matrix.module, weight);
            }
            Ok(AdapterWeights { name: name.into(), bytes, blocks: Arc::new(Mutex::new(blocks)) })
        });
        Some(prepared)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether another handle than this one holds the weights (a queued or running item): the
    /// cache must not evict it, its memory stays anyway.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.blocks) > 1
    }

    /// Device bytes its tensors hold (for a cache bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Handles on its tensors, one entry per block, for one forward pass.
    pub(crate) fn borrow_blocks(&self) -> Vec<BlockOverride> {
        // The tensors are never written after `prepare`, so a poisoned lock still holds them whole.
        let blocks = self.blocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        blocks.iter().map(BlockOverride::shallow_clone).collect()
    }
}

impl PartialEq for AdapterWeights {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for AdapterWeights {}

impl std::hash::Hash for AdapterWeights {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl std::fmt::Debug for AdapterWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterWeights").field("name", &self.name).field("bytes", &self.bytes).finish()
    }
}
