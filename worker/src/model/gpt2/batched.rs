//! The batched attention path: a fixed number of tensor operations per layer for a whole
//! prefill batch or a whole decode step, however many items it holds.
//!
//! Prefill pads the batch's contexts to its longest one and masks (causal and length) in one
//! batched matmul. A decode step reads every item's keys and values from the shared slot pool
//! (`KvPool`) with two gathers: the contexts once per item (all its beams attend to the same
//! context, as one matmul of `beams` query rows), the generated slots once per row along the
//! row's own path. Both score blocks are joined, padding masked with `-inf`, and softmaxed
//! together, in the same operation order as the per-group path.
//!
//! Every gather is a row gather (`index_select` on dimension 0) of `head_dim`-long rows, with
//! head-major indices built once per step on the device: libtorch's CPU `index_select` along
//! any other dimension copies slice by slice, orders of magnitude slower.
//!
//! Kernels per layer, besides the block's own (layer norms, projections, MLP), whatever the
//! number of items: decode 18 (gather q, gather the new k/v, 2 pool writes, 4 pool gathers,
//! 4 bmm, cat, div, masked_fill, softmax, add, the merge of heads); prefill 10 (gather the
//! k/v to store, 2 pool writes, gather the padded q/k/v, 2 bmm, div, masked_fill, softmax,
//! gather of the packed rows). The half types add one cast after the softmax. The per-group
//! path takes 14 per item and layer in decode (2 cache writes, 4 bmm, gather, cat, div,
//! softmax, zeros, scatter, add, merge) plus one cat, and 9 per context in prefill.

use tch::{Device, Kind, Tensor};

use super::{AdapterRows, Gpt2, Qkv};
use crate::model::kv_pool::{Gathered, KvPool, PooledItem, PAD_SLOT};
use crate::model::ModelError;

fn upload(values: &[i64], device: Device) -> Result<Tensor, ModelError> {
    Ok(Tensor::f_from_slice(values)?.f_to_device(device)?)
}

/// `(heads, 1)` column `0, 1, .., heads - 1` times `step`, plus `offset`.
fn head_column(heads: i64, step: i64, offset: i64, device: Device) -> Result<Tensor, ModelError> {
    Ok(Tensor::f_arange_start_step(offset, offset + heads * step, step, (Kind::Int64, device))?.f_unsqueeze(1)?)
}

impl Gpt2 {
    /// Indices into a block's `qkv (rows, 3 * n_embd)` seen as `(rows * 3 * heads, head_dim)`:
    /// for each of `parts` consecutive parts from `first` (0 q, 1 k, 2 v), each head, each of
    /// `rows`, part- then head-major, so the gather comes out `(parts, heads, rows, head_dim)`.
    fn qkv_index(&self, rows: &Tensor, first: i64, parts: i64) -> Result<Tensor, ModelError> {
        let h = self.config.n_head as i64;
        let columns = head_column(parts * h, 1, first * h, self.device)?;
        Ok(columns.f_add(&rows.f_mul_scalar(3 * h)?.f_unsqueeze(0)?)?.f_flatten(0, 1)?)
    }

    fn gather_qkv(&self, qkv: &Qkv, index: &Tensor) -> Result<Tensor, ModelError> {
        Ok(qkv.all.f_reshape([-1, self.config.head_dim() as i64])?.f_index_select(0, index)?)
    }

    /// Prefills `contexts` as one padded batch. With `pool`, each context's keys and values
    /// are written to freshly taken slots, returned per context.
    pub(super) fn prefill_batched(
        &self,
        contexts: &[&[u32]],
        mut pool: Option<&mut KvPool>,
        rows: &AdapterRows,
    ) -> Result<(Vec<Vec<i64>>, Tensor), ModelError> {
        let index = PrefillIndex::new(self, contexts)?;
        let slots = match pool.as_deref_mut() {
            Some(pool) => contexts.iter().map(|c| pool.alloc(c.len())).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let store = match pool.as_deref() {
            Some(pool) => Some(pool.flat_index(&upload(&slots.concat(), self.device)?)?),
            None => None,
        };
        let mut x = self.embed_contexts(contexts)?;
        let (h, d) = (self.config.n_head as i64, self.config.head_dim() as i64);
        let (p, l, n) = (index.contexts, index.max_len, index.tokens);
        for layer in 0..self.weights.blocks.len() {
            let mut attend = |qkv: Qkv| -> Result<Tensor, ModelError> {
                if let (Some(pool), Some(store)) = (pool.as_deref_mut(), store.as_ref()) {
                    let kv = self.gather_qkv(&qkv, &index.packed_kv)?;
                    pool.write(layer, store, &kv.f_narrow(0, 0, h * n)?, &kv.f_narrow(0, h * n, h * n)?)?;
                }
                let padded = self.gather_qkv(&qkv, &index.padded_qkv)?.f_view([3, h * p, l, d])?;
                let (q, k, v) = (padded.f_select(0, 0)?, padded.f_select(0, 1)?, padded.f_select(0, 2)?);
                let scores = q.f_bmm(&k.f_transpose(1, 2)?)?.f_div_scalar(self.scale())?.f_view([h, p, l, l])?;
                let weights = self.softmax(&scores.f_masked_fill(&index.mask, f64::NEG_INFINITY)?)?;
                let out = weights.f_view([h * p, l, l])?.f_bmm(&v)?.f_view([h * p * l, d])?;
                Ok(out.f_index_select(0, &index.packed_out)?.f_view([n, h * d])?)
            };
            x = self.block(layer, &x, rows, &mut attend)?;
        }
        Ok((slots, self.last_position_logits(&x, contexts)?))
    }

    /// One decode step for every row of every item, reading and writing the shared pool. Each
    /// item must have taken this step's slots (`PooledItem::take_step_slots`).
    pub(super) fn decode_step_batched(
        &self,
        tokens: &[i64],
        items: &[&mut PooledItem],
        pool: &mut KvPool,
        adapters: &AdapterRows,
    ) -> Result<Tensor, ModelError> {
        let positions: Vec<i64> =
            items.iter().flat_map(|i| std::iter::repeat_n((i.context_len() + i.steps()) as i64, i.beams())).collect();
        let mut x = self.embed(tokens, &positions)?;
        let index = StepIndex::new(self, items, pool)?;
        let h = self.config.n_head as i64;
        let rows = index.items * index.beams;
        for layer in 0..self.weights.blocks.len() {
            let mut attend = |qkv: Qkv| -> Result<Tensor, ModelError> {
                let kv = self.gather_qkv(&qkv, &index.new_kv)?;
                pool.write(
                    layer,
                    &index.new_slots,
                    &kv.f_narrow(0, 0, h * rows)?,
                    &kv.f_narrow(0, h * rows, h * rows)?,
                )?;
                let q = self.gather_qkv(&qkv, &index.q)?;
                self.attend_pooled(&q, pool, layer, &index)
            };
            x = self.block(layer, &x, adapters, &mut attend)?;
        }
        self.logits(&x)
    }

    /// Attention of the step's rows, `q (heads * rows, head_dim)` head-major, over the pool:
    /// every item's context once for all its beams, and each row's generated slots.
    fn attend_pooled(
        &self,
        q: &Tensor,
        pool: &mut KvPool,
        layer: usize,
        index: &StepIndex,
    ) -> Result<Tensor, ModelError> {
        let (h, d) = (self.config.n_head as i64, self.config.head_dim() as i64);
        let (n, b, c, s) = (index.items, index.beams, index.max_context, index.max_steps);
        let rows = n * b;
        let (ctx_k, ctx_v) = pool.gather(layer, &index.context_slots, Gathered::Context)?;
        let (gen_k, gen_v) = pool.gather(layer, &index.generated_slots, Gathered::Generated)?;
        let (ctx_k, ctx_v) = (ctx_k.f_view([h * n, c, d])?, ctx_v.f_view([h * n, c, d])?);
        let (gen_k, gen_v) = (gen_k.f_view([h * rows, s, d])?, gen_v.f_view([h * rows, s, d])?);
        let ctx_scores = q.f_view([h * n, b, d])?.f_bmm(&ctx_k.f_transpose(1, 2)?)?;
        let gen_scores = q.f_view([h * rows, 1, d])?.f_bmm(&gen_k.f_transpose(1, 2)?)?.f_view([h * n, b, s])?;
        let scores = Tensor::f_cat(&[ctx_scores, gen_scores], 2)?.f_div_scalar(self.scale())?;
        let masked = scores.f_view([h, n, b, c + s])?.f_masked_fill(&index.mask, f64::NEG_INFINITY)?;
        let weights = self.softmax(&masked)?.f_view([h * n, b, c + s])?;
        let ctx_out = weights.f_narrow(2, 0, c)?.f_bmm(&ctx_v)?;
        let gen_out = weights.f_narrow(2, c, s)?.f_view([h * rows, 1, s])?.f_bmm(&gen_v)?;
        let out = ctx_out.f_add(&gen_out.f_view([h * n, b, d])?)?.f_view([h, rows, d])?;
        Ok(out.f_permute([1, 0, 2])?.f_reshape([rows, h * d])?)
    }
}

/// The index tensors of one batched prefill, built once and shared by every layer.
struct PrefillIndex {
    /// Into `qkv`: q, k and v of every padded position (packed row 0 for padding).
    padded_qkv: Tensor,
    /// Into `qkv`: k and v of every packed row, head-major, as the pool stores them.
    packed_kv: Tensor,
    /// Into the output `(heads * contexts * max_len, head_dim)`: each packed row's heads.
    packed_out: Tensor,
    /// `(contexts, max_len, max_len)`: true where a query may not see a key (the future, or
    /// padding).
    mask: Tensor,
    contexts: i64,
    max_len: i64,
    tokens: i64,
}

impl PrefillIndex {
    fn new(model: &Gpt2, contexts: &[&[u32]]) -> Result<Self, ModelError> {
        let device = model.device;
        let max_len = contexts.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut padded_rows = vec![0i64; contexts.len() * max_len];
        let mut packed_positions = Vec::with_capacity(contexts.iter().map(|c| c.len()).sum());
        let mut mask = vec![true; contexts.len() * max_len * max_len];
        let mut row = 0i64;
        for (i, context) in contexts.iter().enumerate() {
            let n = context.len();
            for t in 0..n {
                padded_rows[i * max_len + t] = row + t as i64;
                packed_positions.push((i * max_len + t) as i64);
            }
            for query in 0..max_len {
                let start = (i * max_len + query) * max_len;
                mask[start..][..(query + 1).min(n)].iter_mut().for_each(|m| *m = false);
            }
            row += n as i64;
        }
        let (p, l, n) = (contexts.len() as i64, max_len as i64, row);
        let h = model.config.n_head as i64;
        let packed = upload(&packed_positions, device)?;
        Ok(Self {
            padded_qkv: model.qkv_index(&upload(&padded_rows, device)?, 0, 3)?,
            packed_kv: model.qkv_index(&Tensor::f_arange(n, (Kind::Int64, device))?, 1, 2)?,
            packed_out: packed
                .f_unsqueeze(1)?
                .f_add(&head_column(h, p * l, 0, device)?.f_transpose(0, 1)?)?
                .f_flatten(0, 1)?,
            mask: Tensor::f_from_slice(&mask)?.f_view([p, l, l])?.f_to_device(device)?,
            contexts: p,
            max_len: l,
            tokens: n,
        })
    }
}

/// The index tensors of one batched decode step, shared by every layer.
struct StepIndex {
    /// Into `qkv`: the rows' queries, head-major.
    q: Tensor,
    /// Into `qkv`: the rows' new keys, then values, head-major.
    new_kv: Tensor,
    /// Into the pool (`KvPool::flat_index`): the slot each row writes this step.
    new_slots: Tensor,
    /// Into the pool: each item's context slots, padded with `PAD_SLOT` to `max_context`.
    context_slots: Tensor,
    /// Into the pool: each row's generated slots, this step's included, padded to `max_steps`.
    generated_slots: Tensor,
    /// `(items, 1, max_context + max_steps)`: true at padding.
    mask: Tensor,
    items: i64,
    beams: i64,
    max_context: i64,
    max_steps: i64,
}

impl StepIndex {
    fn new(model: &Gpt2, items: &[&mut PooledItem], pool: &KvPool) -> Result<Self, ModelError> {
        let device = model.device;
        let beams = items.first().map_or(0, |i| i.beams());
        let max_context = items.iter().map(|i| i.context_len()).max().unwrap_or(0);
        let max_steps = items.iter().map(|i| i.steps() + 1).max().unwrap_or(0);
        let width = max_context + max_steps;
        let mut new_slots = Vec::with_capacity(items.len() * beams);
        let mut context_slots = vec![PAD_SLOT; items.len() * max_context];
        let mut generated_slots = vec![PAD_SLOT; items.len() * beams * max_steps];
        let mut mask = vec![true; items.len() * width];
        for (i, item) in items.iter().enumerate() {
            new_slots.extend_from_slice(item.pending());
            context_slots[i * max_context..][..item.context_len()].copy_from_slice(item.context());
            for row in 0..beams {
                let start = (i * beams + row) * max_steps;
                generated_slots[start..].iter_mut().zip(item.row_slots(row)).for_each(|(s, slot)| *s = slot);
            }
            let visible = &mut mask[i * width..][..width];
            visible[..item.context_len()].iter_mut().for_each(|m| *m = false);
            visible[max_context..][..item.steps() + 1].iter_mut().for_each(|m| *m = false);
        }
        let n = items.len() as i64;
        let rows = Tensor::f_arange(n * beams as i64, (Kind::Int64, device))?;
        Ok(Self {
            q: model.qkv_index(&rows, 0, 1)?,
            new_kv: model.qkv_index(&rows, 1, 2)?,
            new_slots: pool.flat_index(&upload(&new_slots, device)?)?,
            context_slots: pool.flat_index(&upload(&context_slots, device)?)?,
            generated_slots: pool.flat_index(&upload(&generated_slots, device)?)?,
            mask: Tensor::f_from_slice(&mask)?.f_view([n, 1, width as i64])?.f_to_device(device)?,
            items: n,
            beams: beams as i64,
            max_context: max_context as i64,
            max_steps: max_steps as i64,
        })
    }
}
