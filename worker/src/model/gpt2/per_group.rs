//! The per-group attention path, kept as the reference implementation and for side-by-side
//! benches (`--attention per-group`): prefill loops over contexts and each decode step loops
//! over items, about 15 tensor operations per item and layer.

use tch::{Kind, Tensor};

use super::{AdapterRows, Gpt2, Qkv};
use crate::model::kv_cache::{GroupCache, LayerKv};
use crate::model::ModelError;

impl Gpt2 {
    /// Runs whole contexts once each. Returns, per context, its keys and values for every
    /// layer, `(heads, len, head_dim)`, and the logits of every context's last position,
    /// `(contexts, vocab)`.
    pub(super) fn prefill_per_group(
        &self,
        contexts: &[&[u32]],
        rows: &AdapterRows,
    ) -> Result<(Vec<Vec<LayerKv>>, Tensor), ModelError> {
        let mut x = self.embed_contexts(contexts)?;
        let mut context_kv: Vec<Vec<LayerKv>> = contexts.iter().map(|_| Vec::new()).collect();
        let masks = contexts
            .iter()
            .map(|c| {
                let n = c.len() as i64;
                Ok(Tensor::f_ones([n, n], (Kind::Bool, self.device))?.f_triu(1)?)
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        for layer in 0..self.weights.blocks.len() {
            let mut attend = |qkv: Qkv| -> Result<Tensor, ModelError> {
                let mut outputs = Vec::with_capacity(contexts.len());
                let mut offset = 0i64;
                for (i, context) in contexts.iter().enumerate() {
                    let n = context.len() as i64;
                    let heads_first = |t: &Tensor| -> Result<Tensor, ModelError> {
                        Ok(t.f_narrow(0, offset, n)?.f_permute([1, 0, 2])?.f_contiguous()?)
                    };
                    let (q, k, v) = (heads_first(&qkv.q)?, heads_first(&qkv.k)?, heads_first(&qkv.v)?);
                    let scores = q.f_bmm(&k.f_transpose(1, 2)?)?.f_div_scalar(self.scale())?;
                    let masked = scores.f_masked_fill(&masks[i], f64::NEG_INFINITY)?;
                    let out = self.softmax(&masked)?.f_bmm(&v)?.f_permute([1, 0, 2])?.f_reshape([n, -1])?;
                    outputs.push(out);
                    context_kv[i].push(LayerKv { keys: k, values: v });
                    offset += n;
                }
                Ok(Tensor::f_cat(&outputs, 0)?)
            };
            x = self.block(layer, &x, rows, &mut attend)?;
        }
        Ok((context_kv, self.last_position_logits(&x, contexts)?))
    }

    /// One decode step for every row of every group: feeds each row's token at the position
    /// after its past, appends its key/value to its group's cache, and returns the logits
    /// `(rows, vocab)`.
    pub(super) fn decode_step_per_group(
        &self,
        tokens: &[i64],
        groups: &mut [&mut GroupCache],
        rows: &AdapterRows,
    ) -> Result<Tensor, ModelError> {
        let positions: Vec<i64> =
            groups.iter().flat_map(|g| std::iter::repeat_n((g.context_len() + g.steps()) as i64, g.beams())).collect();
        let mut x = self.embed(tokens, &positions)?;
        let paths = groups.iter().map(|g| g.path_index()).collect::<Result<Vec<_>, _>>()?;
        for layer in 0..self.weights.blocks.len() {
            let mut attend = |qkv: Qkv| -> Result<Tensor, ModelError> {
                let mut outputs = Vec::with_capacity(groups.len());
                let mut offset = 0i64;
                for (group, path) in groups.iter_mut().zip(&paths) {
                    let b = group.beams() as i64;
                    let heads_first = |t: &Tensor| -> Result<Tensor, ModelError> {
                        Ok(t.f_narrow(0, offset, b)?.f_permute([1, 0, 2])?)
                    };
                    let (q, k, v) = (heads_first(&qkv.q)?, heads_first(&qkv.k)?, heads_first(&qkv.v)?);
                    let (gen_k, gen_v) = group.append(layer, &k, &v)?;
                    outputs.push(self.attend_group(group.context(layer), &q, &gen_k, &gen_v, path)?);
                    offset += b;
                }
                Ok(Tensor::f_cat(&outputs, 0)?)
            };
            x = self.block(layer, &x, rows, &mut attend)?;
        }
        self.logits(&x)
    }

    /// Attention of one group's beams `q (heads, beams, head_dim)` over the shared context
    /// and, through `path (heads, beams, steps)`, over each beam's own generated slots.
    fn attend_group(
        &self,
        context: &LayerKv,
        q: &Tensor,
        gen_k: &Tensor,
        gen_v: &Tensor,
        path: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let ctx_len = context.keys.size()[1];
        let steps = path.size()[2];
        let ctx_scores = q.f_bmm(&context.keys.f_transpose(1, 2)?)?;
        let all_gen_scores = q.f_bmm(&gen_k.f_transpose(1, 2)?)?;
        let gen_scores = all_gen_scores.f_gather(2, path, false)?;
        let weights = self.softmax(&Tensor::f_cat(&[ctx_scores, gen_scores], 2)?.f_div_scalar(self.scale())?)?;
        let ctx_out = weights.f_narrow(2, 0, ctx_len)?.f_bmm(&context.values)?;
        let gen_weights = all_gen_scores.f_zeros_like()?.f_scatter(2, path, &weights.f_narrow(2, ctx_len, steps)?)?;
        let gen_out = gen_weights.f_bmm(gen_v)?;
        let beams = q.size()[1];
        Ok(ctx_out.f_add(&gen_out)?.f_permute([1, 0, 2])?.f_reshape([beams, -1])?)
    }
}
