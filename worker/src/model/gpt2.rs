//! The GPT-2 forward pass: prefill of whole contexts and one-token decode steps over many
//! beam groups at once, with pre-LayerNorm blocks, tanh-GELU and an LM head tied to `wte`.
//! Attention runs batched (`gpt2/batched.rs`, the default) or per group (`gpt2/per_group.rs`).

mod adapter_rows;
mod batched;
mod per_group;
#[cfg(test)]
mod tests;

use tch::{Device, Kind, Tensor};

use super::batch_kv::{AttentionPath, BatchKv, ItemKv};
use super::kv_cache::GroupCache;
use super::kv_pool::{KvPool, PooledItem, DEFAULT_INITIAL_SLOTS};
use super::layers::{gelu_, layer_norm};
use super::weights::{BlockWeights, Gpt2Weights};
use super::{AdaptedModule, AdapterMath, AdapterWeights, Gpt2Config, ModelError, Precision};
pub(crate) use adapter_rows::AdapterRows;

/// Rows from which the LM head runs as `(wte @ h^T)^T` (see `Gpt2::logits`).
const LM_HEAD_TRANSPOSED_MIN_ROWS: i64 = 64;

pub struct Gpt2 {
    config: Gpt2Config,
    weights: Gpt2Weights,
    precision: Precision,
    device: Device,
    attention: AttentionPath,
    adapter_math: AdapterMath,
}

/// Query, key and value of some rows, each `(rows, heads, head_dim)`, and the projection they
/// are views of, `all (rows, 3 * n_embd)`.
struct Qkv {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    all: Tensor,
}

impl Gpt2 {
    pub fn new(config: Gpt2Config, weights: Gpt2Weights, precision: Precision, device: Device) -> Self {
        Self {
            config,
            weights,
            precision,
            device,
            attention: AttentionPath::default(),
            adapter_math: AdapterMath::default(),
        }
    }

    /// Chooses the attention path (batched by default).
    pub fn with_attention(mut self, attention: AttentionPath) -> Self {
        self.attention = attention;
        self
    }

    /// Chooses how adapters prepared for this model reach their rows (low-rank by default).
    pub fn with_adapter_math(mut self, adapter_math: AdapterMath) -> Self {
        self.adapter_math = adapter_math;
        self
    }

    pub fn adapter_math(&self) -> AdapterMath {
        self.adapter_math
    }

    /// The first LoRA tensor merged into the weights at load, and its file; `None`: a bare base.
    pub fn merged_lora(&self) -> Option<&(String, std::path::PathBuf)> {
        self.weights.merged_lora.as_ref()
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn attention(&self) -> AttentionPath {
        self.attention
    }

    pub(crate) fn weights(&self) -> &Gpt2Weights {
        &self.weights
    }

    /// Multiply-adds ×2 per generated row at a given attended length (weights plus attention).
    pub fn flops_per_token(&self, attended: usize) -> f64 {
        let (e, l, v) = (self.config.n_embd as f64, self.config.n_layer as f64, self.config.vocab_size as f64);
        2.0 * (l * (12.0 * e * e + 2.0 * e * attended as f64) + e * v)
    }

    /// Bytes of keys and values one position takes over all layers.
    pub fn kv_bytes_per_position(&self) -> usize {
        2 * self.config.n_layer * self.config.n_embd * self.precision.bytes()
    }

    /// An empty KV state for a running batch on this model's attention path. `positions`
    /// reserves the pool's size up front (a KV budget), so it never grows by copying; without
    /// it the pool starts small and doubles when full.
    pub fn new_batch_kv(&self, positions: Option<usize>) -> Result<BatchKv, ModelError> {
        let pool = match self.attention {
            AttentionPath::Batched => Some(KvPool::new(
                self.config.n_layer,
                self.config.n_head as i64,
                self.config.head_dim() as i64,
                positions.map_or(DEFAULT_INITIAL_SLOTS, |p| p + 1),
                self.precision.kind(),
                self.device,
            )?),
            AttentionPath::PerGroup => None,
        };
        Ok(BatchKv::new(pool))
    }

    /// Runs whole contexts once each and keeps their keys and values in `kv`, for `beams` rows
    /// each and at most `capacity` generated steps. Returns the items' caches and the logits of
    /// every context's last position, `(contexts, vocab)`.
    pub fn prefill(
        &self,
        contexts: &[&[u32]],
        kv: &mut BatchKv,
        beams: usize,
        capacity: usize,
    ) -> Result<(Vec<ItemKv>, Tensor), ModelError> {
        self.prefill_adapted(contexts, &[], kv, beams, capacity)
    }

    /// `prefill`, each context with its adapter (`adapters[i]` for `contexts[i]`; empty: all on
    /// the base). Contexts of one adapter placed side by side share their projections' matmuls.
    pub fn prefill_adapted(
        &self,
        contexts: &[&[u32]],
        adapters: &[Option<&AdapterWeights>],
        kv: &mut BatchKv,
        beams: usize,
        capacity: usize,
    ) -> Result<(Vec<ItemKv>, Tensor), ModelError> {
        let rows = context_rows(contexts, adapters)?;
        match kv.pool.as_mut() {
            Some(pool) => {
                let (slots, logits) = self.prefill_batched(contexts, Some(pool), &rows)?;
                Ok((slots.into_iter().map(|s| ItemKv::Pooled(PooledItem::new(s, beams))).collect(), logits))
            }
            None => {
                let (context_kv, logits) = self.prefill_per_group(contexts, &rows)?;
                let caches = context_kv
                    .into_iter()
                    .map(|kv| Ok(ItemKv::PerGroup(GroupCache::new(kv, beams, capacity)?)))
                    .collect::<Result<Vec<_>, ModelError>>()?;
                Ok((caches, logits))
            }
        }
    }

    /// The logits of every context's last position, keeping no keys or values.
    pub fn prefill_logits(&self, contexts: &[&[u32]]) -> Result<Tensor, ModelError> {
        self.prefill_logits_adapted(contexts, &[])
    }

    /// `prefill_logits`, each context with its adapter (as `prefill_adapted`).
    pub fn prefill_logits_adapted(
        &self,
        contexts: &[&[u32]],
        adapters: &[Option<&AdapterWeights>],
    ) -> Result<Tensor, ModelError> {
        let rows = context_rows(contexts, adapters)?;
        match self.attention {
            AttentionPath::Batched => Ok(self.prefill_batched(contexts, None, &rows)?.1),
            AttentionPath::PerGroup => Ok(self.prefill_per_group(contexts, &rows)?.1),
        }
    }

    /// One decode step for every row of every item: feeds each row's token (`tokens`, the
    /// items' beams in order) at the position after its past, stores its key and value, and
    /// returns the logits `(rows, vocab)`. The caller then commits the step with
    /// `ItemKv::reorder`.
    pub fn decode_step(
        &self,
        tokens: &[i64],
        items: &mut [&mut ItemKv],
        kv: &mut BatchKv,
    ) -> Result<Tensor, ModelError> {
        self.decode_step_adapted(tokens, items, &[], kv)
    }

    /// `decode_step`, each item's rows with its adapter (`adapters[i]` for `items[i]`; empty:
    /// all on the base). Keep items of one adapter side by side: each run of them is one
    /// matmul per projection.
    pub fn decode_step_adapted(
        &self,
        tokens: &[i64],
        items: &mut [&mut ItemKv],
        adapters: &[Option<&AdapterWeights>],
        kv: &mut BatchKv,
    ) -> Result<Tensor, ModelError> {
        check_count(adapters, items.len())?;
        let rows = AdapterRows::new(adapters.iter().zip(items.iter()).map(|(a, i)| (*a, i.beams() as i64)));
        match kv.pool.as_mut() {
            Some(pool) => {
                let mut pooled = Vec::with_capacity(items.len());
                for item in items.iter_mut() {
                    let ItemKv::Pooled(item) = &mut **item else { return Err(ModelError::MixedAttentionPaths) };
                    item.take_step_slots(pool)?;
                    pooled.push(item);
                }
                self.decode_step_batched(tokens, &pooled, pool, &rows)
            }
            None => {
                let mut groups = Vec::with_capacity(items.len());
                for item in items.iter_mut() {
                    let ItemKv::PerGroup(cache) = &mut **item else { return Err(ModelError::MixedAttentionPaths) };
                    groups.push(cache);
                }
                self.decode_step_per_group(tokens, &mut groups, &rows)
            }
        }
    }

    fn ids(&self, ids: &[i64]) -> Result<Tensor, ModelError> {
        Ok(Tensor::f_from_slice(ids)?.f_to_device(self.device)?)
    }

    fn embed(&self, tokens: &[i64], positions: &[i64]) -> Result<Tensor, ModelError> {
        let tok = self.weights.wte.f_index_select(0, &self.ids(tokens)?)?;
        let pos = self.weights.wpe.f_index_select(0, &self.ids(positions)?)?;
        Ok(tok.f_add(&pos)?)
    }

    /// Token plus position embeddings of contexts packed one after another.
    fn embed_contexts(&self, contexts: &[&[u32]]) -> Result<Tensor, ModelError> {
        let tokens: Vec<i64> = contexts.iter().flat_map(|c| c.iter().map(|&t| t as i64)).collect();
        let positions: Vec<i64> = contexts.iter().flat_map(|c| 0..c.len() as i64).collect();
        self.embed(&tokens, &positions)
    }

    fn split_heads(&self, qkv: &Tensor) -> Result<Qkv, ModelError> {
        let (e, h, d) = (self.config.n_embd as i64, self.config.n_head as i64, self.config.head_dim() as i64);
        let rows = qkv.size()[0];
        let part = |i: i64| -> Result<Tensor, ModelError> { Ok(qkv.f_narrow(1, i * e, e)?.f_view([rows, h, d])?) };
        Ok(Qkv { q: part(0)?, k: part(1)?, v: part(2)?, all: qkv.shallow_clone() })
    }

    fn scale(&self) -> f64 {
        (self.config.head_dim() as f64).sqrt()
    }

    /// Softmax over the last dimension; the half types compute it in f32 (their exponent sums
    /// would round badly) and return to their own dtype for the product with the values.
    fn softmax(&self, scores: &Tensor) -> Result<Tensor, ModelError> {
        match self.precision {
            Precision::F32 | Precision::F64 => Ok(scores.f_softmax(-1, None)?),
            Precision::Bf16 | Precision::F16 => {
                Ok(scores.f_softmax(-1, Some(Kind::Float))?.f_to_kind(self.precision.kind())?)
            }
        }
    }

    /// Pre-LayerNorm block `layer`; `attend` maps the rows' `Qkv` to their merged-head output,
    /// and `rows` says which adapter's matrices each row is multiplied by.
    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        rows: &AdapterRows,
        attend: &mut dyn FnMut(Qkv) -> Result<Tensor, ModelError>,
    ) -> Result<Tensor, ModelError> {
        let block: &BlockWeights = &self.weights.blocks[layer];
        let eps = self.config.layer_norm_epsilon;
        let qkv = rows.linear(layer, AdaptedModule::CAttn, &layer_norm(x, &block.ln_1, eps)?, &block.c_attn)?;
        let attended = attend(self.split_heads(&qkv)?)?;
        let x = x.f_add(&rows.linear(layer, AdaptedModule::AttnProj, &attended, &block.attn_proj)?)?;
        let mut hidden = rows.linear(layer, AdaptedModule::CFc, &layer_norm(&x, &block.ln_2, eps)?, &block.c_fc)?;
        gelu_(&mut hidden)?;
        Ok(x.f_add(&rows.linear(layer, AdaptedModule::MlpProj, &hidden, &block.mlp_proj)?)?)
    }

    /// `ln_f` then the tied LM head, on rows `(n, n_embd)`: logits `(n, vocab)`.
    fn logits(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let h = layer_norm(x, &self.weights.ln_f, self.config.layer_norm_epsilon)?;
        if h.size()[0] < LM_HEAD_TRANSPOSED_MIN_ROWS {
            return Ok(h.f_matmul(&self.weights.wte.f_transpose(0, 1)?)?);
        }
        // `(wte @ h^T)^T` gives the same dot products, but MKL streams the big `wte` far faster
        // in this orientation (about 110 vs 85 GFLOP/s at 80 rows on 2 cores).
        Ok(self.weights.wte.f_matmul(&h.f_transpose(0, 1)?)?.f_transpose(0, 1)?.f_contiguous()?)
    }

    /// The logits of each packed context's last position.
    fn last_position_logits(&self, x: &Tensor, contexts: &[&[u32]]) -> Result<Tensor, ModelError> {
        let last_rows: Vec<i64> = contexts
            .iter()
            .scan(0i64, |end, c| {
                *end += c.len() as i64;
                Some(*end - 1)
            })
            .collect();
        self.logits(&x.f_index_select(0, &self.ids(&last_rows)?)?)
    }
}

/// The adapter rows of packed contexts: each context's tokens on its adapter.
fn context_rows(contexts: &[&[u32]], adapters: &[Option<&AdapterWeights>]) -> Result<AdapterRows, ModelError> {
    check_count(adapters, contexts.len())?;
    Ok(AdapterRows::new(adapters.iter().zip(contexts).map(|(a, c)| (*a, c.len() as i64))))
}

/// One adapter per item, or none at all (the base).
fn check_count(adapters: &[Option<&AdapterWeights>], items: usize) -> Result<(), ModelError> {
    if adapters.is_empty() || adapters.len() == items {
        Ok(())
    } else {
        Err(ModelError::AdapterCount { given: adapters.len(), rows: items })
    }
}
