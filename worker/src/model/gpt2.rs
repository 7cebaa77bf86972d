//! The GPT-2 forward pass: prefill of whole contexts and one-token decode steps over many
//! beam groups at once, with pre-LayerNorm blocks, tanh-GELU and an LM head tied to `wte`.

use tch::{Device, Kind, Tensor};

use super::kv_cache::{GroupCache, LayerKv};
use super::layers::{gelu_, layer_norm, linear};
use super::weights::{BlockWeights, Gpt2Weights};
use super::{Gpt2Config, ModelError, Precision};

/// Rows from which the LM head runs as `(wte @ h^T)^T` (see `Gpt2::logits`).
const LM_HEAD_TRANSPOSED_MIN_ROWS: i64 = 64;

pub struct Gpt2 {
    config: Gpt2Config,
    weights: Gpt2Weights,
    precision: Precision,
    device: Device,
}

/// The rows of one decode step: every group's beams, in group order, one token each.
pub struct DecodeRows<'a> {
    /// The token each row feeds, `sum(beams)` long.
    pub tokens: &'a [i64],
    pub groups: Vec<&'a mut GroupCache>,
}

/// Query, key and value of some rows, each `(rows, heads, head_dim)`.
struct Qkv {
    q: Tensor,
    k: Tensor,
    v: Tensor,
}

impl Gpt2 {
    pub fn new(config: Gpt2Config, weights: Gpt2Weights, precision: Precision, device: Device) -> Self {
        Self { config, weights, precision, device }
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Multiply-adds ×2 per generated row at a given attended length (weights plus attention).
    pub fn flops_per_token(&self, attended: usize) -> f64 {
        let (e, l, v) = (self.config.n_embd as f64, self.config.n_layer as f64, self.config.vocab_size as f64);
        2.0 * (l * (12.0 * e * e + 2.0 * e * attended as f64) + e * v)
    }

    fn ids(&self, ids: &[i64]) -> Result<Tensor, ModelError> {
        Ok(Tensor::f_from_slice(ids)?.f_to_device(self.device)?)
    }

    fn embed(&self, tokens: &[i64], positions: &[i64]) -> Result<Tensor, ModelError> {
        let tok = self.weights.wte.f_index_select(0, &self.ids(tokens)?)?;
        let pos = self.weights.wpe.f_index_select(0, &self.ids(positions)?)?;
        Ok(tok.f_add(&pos)?)
    }

    fn split_heads(&self, qkv: &Tensor) -> Result<Qkv, ModelError> {
        let (e, h, d) = (self.config.n_embd as i64, self.config.n_head as i64, self.config.head_dim() as i64);
        let rows = qkv.size()[0];
        let part = |i: i64| -> Result<Tensor, ModelError> { Ok(qkv.f_narrow(1, i * e, e)?.f_view([rows, h, d])?) };
        Ok(Qkv { q: part(0)?, k: part(1)?, v: part(2)? })
    }

    fn scale(&self) -> f64 {
        (self.config.head_dim() as f64).sqrt()
    }

    /// One pre-LayerNorm block; `attend` maps the rows' `Qkv` to their merged-head output.
    fn block(
        &self,
        block: &BlockWeights,
        x: &Tensor,
        attend: &mut dyn FnMut(Qkv) -> Result<Tensor, ModelError>,
    ) -> Result<Tensor, ModelError> {
        let eps = self.config.layer_norm_epsilon;
        let qkv = linear(&layer_norm(x, &block.ln_1, eps)?, &block.c_attn)?;
        let attended = attend(self.split_heads(&qkv)?)?;
        let x = x.f_add(&linear(&attended, &block.attn_proj)?)?;
        let mut hidden = linear(&layer_norm(&x, &block.ln_2, eps)?, &block.c_fc)?;
        gelu_(&mut hidden)?;
        Ok(x.f_add(&linear(&hidden, &block.mlp_proj)?)?)
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

    /// Runs whole contexts once each. Returns, per context, its keys and values for every
    /// layer, `(heads, len, head_dim)`, and the logits of every context's last position,
    /// `(contexts, vocab)`.
    pub fn prefill(&self, contexts: &[&[u32]]) -> Result<(Vec<Vec<LayerKv>>, Tensor), ModelError> {
        let tokens: Vec<i64> = contexts.iter().flat_map(|c| c.iter().map(|&t| t as i64)).collect();
        let positions: Vec<i64> = contexts.iter().flat_map(|c| 0..c.len() as i64).collect();
        let mut x = self.embed(&tokens, &positions)?;
        let mut context_kv: Vec<Vec<LayerKv>> = contexts.iter().map(|_| Vec::new()).collect();
        let masks = contexts
            .iter()
            .map(|c| {
                let n = c.len() as i64;
                Ok(Tensor::f_ones([n, n], (Kind::Bool, self.device))?.f_triu(1)?)
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        for block in &self.weights.blocks {
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
                    let weights = scores.f_masked_fill(&masks[i], f64::NEG_INFINITY)?.f_softmax(-1, None)?;
                    let out = weights.f_bmm(&v)?.f_permute([1, 0, 2])?.f_reshape([n, -1])?;
                    outputs.push(out);
                    context_kv[i].push(LayerKv { keys: k, values: v });
                    offset += n;
                }
                Ok(Tensor::f_cat(&outputs, 0)?)
            };
            x = self.block(block, &x, &mut attend)?;
        }
        let last_rows: Vec<i64> = contexts
            .iter()
            .scan(0i64, |end, c| {
                *end += c.len() as i64;
                Some(*end - 1)
            })
            .collect();
        let logits = self.logits(&x.f_index_select(0, &self.ids(&last_rows)?)?)?;
        Ok((context_kv, logits))
    }

    /// One decode step for every row of every group: feeds each row's token at the position
    /// after its past, appends its key/value to its group's cache, and returns the logits
    /// `(rows, vocab)`. The caller then commits the step with `GroupCache::reorder`.
    pub fn decode_step(&self, mut rows: DecodeRows<'_>) -> Result<Tensor, ModelError> {
        let positions: Vec<i64> = rows
            .groups
            .iter()
            .flat_map(|g| std::iter::repeat_n((g.context_len() + g.steps()) as i64, g.beams()))
            .collect();
        let mut x = self.embed(rows.tokens, &positions)?;
        let paths = rows.groups.iter().map(|g| g.path_index()).collect::<Result<Vec<_>, _>>()?;
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            let mut attend = |qkv: Qkv| -> Result<Tensor, ModelError> {
                let mut outputs = Vec::with_capacity(rows.groups.len());
                let mut offset = 0i64;
                for (group, path) in rows.groups.iter_mut().zip(&paths) {
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
            x = self.block(block, &x, &mut attend)?;
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
        let weights = Tensor::f_cat(&[ctx_scores, gen_scores], 2)?.f_div_scalar(self.scale())?.f_softmax(-1, None)?;
        let ctx_out = weights.f_narrow(2, 0, ctx_len)?.f_bmm(&context.values)?;
        let gen_weights = all_gen_scores.f_zeros_like()?.f_scatter(2, path, &weights.f_narrow(2, ctx_len, steps)?)?;
        let gen_out = gen_weights.f_bmm(gen_v)?;
        let beams = q.size()[1];
        Ok(ctx_out.f_add(&gen_out)?.f_permute([1, 0, 2])?.f_reshape([beams, -1])?)
    }
}
