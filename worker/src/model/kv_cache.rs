//! The lean KV cache of one beam group (one item's beams).
//!
//! The context's keys and values are stored once, shared by all beams. Each generated step
//! stores one slot per beam row, and a beam's past is a path of `(step, row)` slots. Reordering
//! beams after top-k only rewrites those paths (small integer vectors): no key or value is
//! copied, neither the context's nor the generated ones. Attention gathers a beam's scores
//! along its path (see `Gpt2::decode`).

use tch::{Device, Kind, Tensor};

use super::ModelError;

/// Keys and values of one layer. Context: `(heads, ctx_len, head_dim)`.
/// Generated: `(heads, capacity, beams, head_dim)`, slot `[.., step, row, ..]`.
pub struct LayerKv {
    pub keys: Tensor,
    pub values: Tensor,
}

pub struct GroupCache {
    context: Vec<LayerKv>,
    generated: Vec<LayerKv>,
    context_len: usize,
    beams: usize,
    /// Steps whose slots are written and committed by `reorder`.
    steps: usize,
    /// For each beam, its committed path: flat slot `step * beams + row` for every step.
    paths: Vec<Vec<i64>>,
}

impl GroupCache {
    /// A cache for `beams` rows over `context`, with room for `capacity` generated steps.
    pub fn new(context: Vec<LayerKv>, beams: usize, capacity: usize) -> Result<Self, ModelError> {
        let first = context.first().ok_or_else(|| ModelError::Torch(tch::TchError::Kind("no layers".into())))?;
        let (heads, context_len, head_dim) = match first.keys.size().as_slice() {
            &[h, l, d] => (h, l as usize, d),
            other => return Err(ModelError::Torch(tch::TchError::Shape(format!("context keys {other:?}")))),
        };
        let options: (Kind, Device) = (first.keys.kind(), first.keys.device());
        let shape = [heads, capacity as i64, beams as i64, head_dim];
        // Uninitialised: attention reads only slots `0..=steps`, and every step writes its slot
        // for every row before reading it.
        let generated = (0..context.len())
            .map(|_| Ok(LayerKv { keys: Tensor::f_empty(shape, options)?, values: Tensor::f_empty(shape, options)? }))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self { context, generated, context_len, beams, steps: 0, paths: vec![Vec::new(); beams] })
    }

    pub fn beams(&self) -> usize {
        self.beams
    }

    pub fn context_len(&self) -> usize {
        self.context_len
    }

    /// Generated steps already committed; the next forward writes slot `steps()`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn context(&self, layer: usize) -> &LayerKv {
        &self.context[layer]
    }

    /// Stores the new step's keys and values, each `(heads, beams, head_dim)`, and returns the
    /// generated keys and values so far, flattened to `(heads, (steps + 1) * beams, head_dim)`.
    pub fn append(&mut self, layer: usize, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let slot = self.steps as i64;
        let kv = &mut self.generated[layer];
        kv.keys.f_select(1, slot)?.f_copy_(keys)?;
        kv.values.f_select(1, slot)?.f_copy_(values)?;
        let flat = |t: &Tensor| -> Result<Tensor, ModelError> {
            let s = t.size();
            Ok(t.f_narrow(1, 0, slot + 1)?.f_reshape([s[0], (slot + 1) * s[2], s[3]])?)
        };
        Ok((flat(&kv.keys)?, flat(&kv.values)?))
    }

    /// For every beam row, the flat slots of its path including the step being computed,
    /// repeated for every head: `(heads, beams, steps + 1)`, on the cache's device.
    pub fn path_index(&self) -> Result<Tensor, ModelError> {
        let step = self.steps as i64;
        let beams = self.beams as i64;
        let mut flat = Vec::with_capacity(self.beams * (self.steps + 1));
        for (row, path) in self.paths.iter().enumerate() {
            flat.extend_from_slice(path);
            flat.push(step * beams + row as i64);
        }
        let keys = &self.context[0].keys;
        let heads = keys.size()[0];
        let index = Tensor::f_from_slice(&flat)?.f_view([1, beams, step + 1])?.f_to_device(keys.device())?;
        Ok(index.f_expand([heads, beams, step + 1], false)?)
    }

    /// Commits the step just computed: new beam `j` continues old row `parents[j]`.
    pub fn reorder(&mut self, parents: &[usize]) {
        let step = (self.steps * self.beams) as i64;
        self.paths = parents
            .iter()
            .map(|&parent| {
                let mut path = self.paths[parent].clone();
                path.push(step + parent as i64);
                path
            })
            .collect();
        self.steps += 1;
    }
}
