//! An adapter ready to decode with: copies of only the base matrices it adapts, with its
//! update merged in f64 and cast to the model's precision on the model's device, exactly as
//! `--init_checkpoint` merges loralib at load. Rows of an adapter are then multiplied by these
//! copies, so they compute what a model merged with that adapter alone computes.

use std::sync::{Arc, Mutex};

use tch::{Kind, Tensor};

use super::adapter::{AdaptedModule, Adapter};
use super::lora::add_low_rank;
use super::weights::BlockWeights;
use super::{Gpt2, ModelError};

/// The merged weights of one block's adapted matrices; `None` is the base's.
#[derive(Default)]
pub(crate) struct BlockOverride {
    pub c_attn: Option<Tensor>,
    pub attn_proj: Option<Tensor>,
    pub c_fc: Option<Tensor>,
    pub mlp_proj: Option<Tensor>,
}

impl BlockOverride {
    fn slot(&mut self, module: AdaptedModule) -> &mut Option<Tensor> {
        match module {
            AdaptedModule::CAttn => &mut self.c_attn,
            AdaptedModule::AttnProj => &mut self.attn_proj,
            AdaptedModule::CFc => &mut self.c_fc,
            AdaptedModule::MlpProj => &mut self.mlp_proj,
        }
    }

    /// The merged weight of `module`, if this adapter changes it.
    pub fn get(&self, module: AdaptedModule) -> Option<&Tensor> {
        match module {
            AdaptedModule::CAttn => self.c_attn.as_ref(),
            AdaptedModule::AttnProj => self.attn_proj.as_ref(),
            AdaptedModule::CFc => self.c_fc.as_ref(),
            AdaptedModule::MlpProj => self.mlp_proj.as_ref(),
        }
    }

    fn shallow_clone(&self) -> Self {
        let copy = |t: &Option<Tensor>| t.as_ref().map(Tensor::shallow_clone);
        Self {
            c_attn: copy(&self.c_attn),
            attn_proj: copy(&self.attn_proj),
            c_fc: copy(&self.c_fc),
            mlp_proj: copy(&self.mlp_proj),
        }
    }
}

fn base_weight(block: &BlockWeights, module: AdaptedModule) -> &Tensor {
    match module {
        AdaptedModule::CAttn => &block.c_attn.weight,
        AdaptedModule::AttnProj => &block.attn_proj.weight,
        AdaptedModule::CFc => &block.c_fc.weight,
        AdaptedModule::MlpProj => &block.mlp_proj.weight,
    }
}

/// An adapter merged for one model. Cloning is cheap (shared); two are equal when their names
/// are, so one name must mean one adapter within a process. It is `Send` and `Sync`: the
/// tensors (which libtorch lets move but not share) sit behind a mutex that a forward pass
/// takes once, to borrow them.
#[derive(Clone)]
pub struct AdapterWeights {
    name: Arc<str>,
    bytes: usize,
    blocks: Arc<Mutex<Vec<BlockOverride>>>,
}

impl AdapterWeights {
    /// Merges `adapter` into copies of the base matrices it adapts.
    pub fn merge(model: &Gpt2, adapter: &Adapter, name: &str) -> Result<AdapterWeights, ModelError> {
        let config = model.config();
        if adapter.base_shape != (config.n_embd, config.n_layer) {
            return Err(ModelError::AdapterBaseMismatch {
                name: name.into(),
                adapter_embd: adapter.base_shape.0,
                adapter_layers: adapter.base_shape.1,
                model_embd: config.n_embd,
                model_layers: config.n_layer,
            });
        }
        let blocks_in = &model.weights().blocks;
        let mut blocks: Vec<BlockOverride> = blocks_in.iter().map(|_| BlockOverride::default()).collect();
        let mut bytes = 0;
        for matrix in &adapter.matrices {
            let base = base_weight(&blocks_in[matrix.layer], matrix.module);
            // A copy always: for an f64 model on the CPU the conversions are no-ops that would
            // hand back the base's own storage, and the merge below writes in place.
            let merged = base.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?.f_detach_copy()?;
            for part in &matrix.parts {
                add_low_rank(&merged, part.column, &part.a, &part.b, matrix.scaling)?;
            }
            let placed = merged.f_to_kind(base.kind())?.f_to_device(base.device())?;
            bytes += placed.numel() * model.precision().bytes();
            *blocks[matrix.layer].slot(matrix.module) = Some(placed);
        }
        Ok(AdapterWeights { name: name.into(), bytes, blocks: Arc::new(Mutex::new(blocks)) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Device bytes the merged copies hold (for a cache bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Handles on the merged matrices, one entry per block, for one forward pass.
    pub(crate) fn borrow_blocks(&self) -> Vec<BlockOverride> {
        // The tensors are never written after the merge, so a poisoned lock still holds them whole.
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
