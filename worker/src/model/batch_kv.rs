//! The running batch's KV state, for either attention path: the batched path keeps every item
//! in one shared slot pool (`KvPool`), the per-group path gives each item its own tensors
//! (`GroupCache`, kept as the reference implementation and for side-by-side benches).

use super::kv_cache::GroupCache;
use super::kv_pool::{KvPool, PooledItem};
use super::ModelError;

/// How a decode step attends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPath {
    /// One gather, one masked softmax and a fixed number of matmuls per layer for the whole
    /// running batch, however many items it holds.
    #[default]
    Batched,
    /// A loop over the items of the batch, about 15 tensor operations per item and layer.
    PerGroup,
}

impl std::str::FromStr for AttentionPath {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "batched" => Ok(Self::Batched),
            "per-group" => Ok(Self::PerGroup),
            other => Err(ModelError::UnknownAttention(other.to_string())),
        }
    }
}

impl std::fmt::Display for AttentionPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Batched => "batched",
            Self::PerGroup => "per-group",
        })
    }
}

/// The KV state shared by a running batch: the pool on the batched path, nothing on the
/// per-group path (each item owns its tensors).
pub struct BatchKv {
    pub(super) pool: Option<KvPool>,
}

impl BatchKv {
    pub(super) fn new(pool: Option<KvPool>) -> Self {
        Self { pool }
    }

    /// Gives an item's slots back (on the per-group path its tensors are simply dropped).
    pub fn release(&mut self, item: ItemKv) {
        if let (ItemKv::Pooled(item), Some(pool)) = (item, self.pool.as_mut()) {
            item.release(pool);
        }
    }

    /// Slots in use and allocated in the pool (`None` on the per-group path).
    pub fn pool_slots(&self) -> Option<(usize, usize)> {
        self.pool.as_ref().map(|p| (p.used(), p.capacity()))
    }
}

/// One item's KV cache.
pub enum ItemKv {
    Pooled(PooledItem),
    PerGroup(GroupCache),
}

impl ItemKv {
    pub fn beams(&self) -> usize {
        match self {
            Self::Pooled(item) => item.beams(),
            Self::PerGroup(cache) => cache.beams(),
        }
    }

    pub fn context_len(&self) -> usize {
        match self {
            Self::Pooled(item) => item.context_len(),
            Self::PerGroup(cache) => cache.context_len(),
        }
    }

    /// Generated steps already committed.
    pub fn steps(&self) -> usize {
        match self {
            Self::Pooled(item) => item.steps(),
            Self::PerGroup(cache) => cache.steps(),
        }
    }

    /// Forgets a computed step that will not be committed (benches repeat one step this way).
    pub fn abandon_step(&mut self, kv: &mut BatchKv) {
        if let (Self::Pooled(item), Some(pool)) = (self, kv.pool.as_mut()) {
            item.abandon_step(pool);
        }
    }

    /// Commits the step just computed: new beam `j` continues old row `parents[j]`.
    pub fn reorder(&mut self, parents: &[usize], kv: &mut BatchKv) -> Result<(), ModelError> {
        match (self, kv.pool.as_mut()) {
            (Self::Pooled(item), Some(pool)) => item.reorder(parents, pool),
            (Self::PerGroup(cache), None) => cache.reorder(parents),
            _ => return Err(ModelError::MixedAttentionPaths),
        }
        Ok(())
    }
}
