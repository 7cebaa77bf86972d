//! The batched path's KV store: per layer, one pool of key/value slots shared by every item of
//! the running batch.
//!
//! A slot holds one position's keys and values for every head. An item's context takes one slot
//! per token, stored once for all its beams; each decode step takes one slot per beam row. Which
//! slots a row attends to is a list of slot ids (see `PooledItem`), so reordering beams rewrites
//! those lists and copies no key or value. Slot 0 is reserved and zero: index tensors pad with it,
//! and its masked-out weight times a finite zero stays exactly zero.

use tch::{Device, Kind, Tensor};

use super::kv_cache::LayerKv;
use super::ModelError;

/// Slots of a fresh pool when no size is asked for; it doubles when full.
pub const DEFAULT_INITIAL_SLOTS: usize = 4096;

/// The slot reserved for padding.
pub const PAD_SLOT: i64 = 0;

/// Which of a decode step's gathers (`KvPool::gather`) reads: each has its own output buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gathered {
    /// The items' context slots.
    Context = 0,
    /// The rows' generated slots.
    Generated = 1,
}

pub struct KvPool {
    /// Per layer: keys and values `(heads, capacity, head_dim)`.
    layers: Vec<LayerKv>,
    /// On the CPU, flat output buffers of the gathers, keys then values per `Gathered`,
    /// reused by every layer and step. A step's gathers run to tens of MiB; fresh tensors that
    /// size come from glibc's mmap each time, and faulting their pages in cost more than the
    /// copy itself (about 60% of the gather time, measured on the e2e bench). CUDA's caching
    /// allocator reuses its blocks already, so there the gathers allocate as usual.
    scratch: [Option<Tensor>; 4],
    /// Free slot ids, lowest on top.
    free: Vec<i64>,
    capacity: i64,
    heads: i64,
    head_dim: i64,
    kind: Kind,
    device: Device,
}

impl KvPool {
    /// A pool of `slots` slots (at least 2: the pad slot and one more).
    pub fn new(
        layers: usize,
        heads: i64,
        head_dim: i64,
        slots: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Self, ModelError> {
        let slots = slots.max(2) as i64;
        let mut pool = Self {
            layers: Vec::new(),
            scratch: Default::default(),
            free: Vec::new(),
            capacity: 0,
            heads,
            head_dim,
            kind,
            device,
        };
        pool.layers = (0..layers).map(|_| pool.empty_layer(slots)).collect::<Result<_, _>>()?;
        for layer in &mut pool.layers {
            let _ = layer.keys.f_select(1, PAD_SLOT)?.f_zero_()?;
            let _ = layer.values.f_select(1, PAD_SLOT)?.f_zero_()?;
        }
        pool.free.extend((1..slots).rev());
        pool.capacity = slots;
        Ok(pool)
    }

    // Uninitialised: a slot is read only after it was written (or it is the zeroed PAD_SLOT).
    fn empty_layer(&self, slots: i64) -> Result<LayerKv, ModelError> {
        let shape = [self.heads, slots, self.head_dim];
        let options = (self.kind, self.device);
        Ok(LayerKv { keys: Tensor::f_empty(shape, options)?, values: Tensor::f_empty(shape, options)? })
    }

    /// Slots in use, the pad slot included.
    pub fn used(&self) -> usize {
        self.capacity as usize - self.free.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Takes `n` free slots, doubling the pool (one copy per layer) when too few are left.
    pub fn alloc(&mut self, n: usize) -> Result<Vec<i64>, ModelError> {
        if self.free.len() < n {
            let needed = self.capacity + (n - self.free.len()) as i64;
            self.grow((2 * self.capacity).max(needed))?;
        }
        Ok(self.free.split_off(self.free.len() - n).into_iter().rev().collect())
    }

    fn grow(&mut self, capacity: i64) -> Result<(), ModelError> {
        let old = self.capacity;
        let mut grown = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let bigger = self.empty_layer(capacity)?;
            bigger.keys.f_narrow(1, 0, old)?.f_copy_(&layer.keys)?;
            bigger.values.f_narrow(1, 0, old)?.f_copy_(&layer.values)?;
            grown.push(bigger);
        }
        self.layers = grown;
        // New slots go under the old free ones, so low ids keep being used first.
        let mut free: Vec<i64> = (old..capacity).rev().collect();
        free.append(&mut self.free);
        self.free = free;
        self.capacity = capacity;
        Ok(())
    }

    /// Gives slots back.
    pub fn release(&mut self, slots: impl IntoIterator<Item = i64>) {
        let start = self.free.len();
        self.free.extend(slots);
        // Reversed, so that the next `alloc` hands them out in the order they came back.
        self.free[start..].reverse();
    }

    pub fn layer(&self, layer: usize) -> &LayerKv {
        &self.layers[layer]
    }

    /// Slot ids `(n)` as row indices `(heads * n)` into a layer seen as `(heads * capacity,
    /// head_dim)`: head-major, so a gather yields `(heads, n, head_dim)` directly. (libtorch's
    /// CPU `index_select` copies slice by slice along any dimension but the first, which is
    /// far slower than this row gather.)
    pub fn flat_index(&self, slots: &Tensor) -> Result<Tensor, ModelError> {
        let heads =
            Tensor::f_arange_start_step(0, self.heads * self.capacity, self.capacity, (Kind::Int64, self.device))?;
        Ok(heads.f_unsqueeze(1)?.f_add(&slots.f_unsqueeze(0)?)?.f_flatten(0, 1)?)
    }

    /// Keys and values at `flat (heads * n)` (from `flat_index`), each `(heads * n, head_dim)`.
    /// On the CPU they are views of `what`'s reused buffers: valid until the next gather of
    /// the same kind.
    pub(crate) fn gather(
        &mut self,
        layer: usize,
        flat: &Tensor,
        what: Gathered,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let rows = [self.heads * self.capacity, self.head_dim];
        if self.device != Device::Cpu {
            let kv = &self.layers[layer];
            return Ok((
                kv.keys.f_view(rows)?.f_index_select(0, flat)?,
                kv.values.f_view(rows)?.f_index_select(0, flat)?,
            ));
        }
        let n = flat.size()[0];
        let keys = self.buffer(2 * what as usize, n)?;
        let values = self.buffer(2 * what as usize + 1, n)?;
        let kv = &self.layers[layer];
        let _ = kv.keys.f_view(rows)?.f_index_select_out(&keys, 0, flat)?;
        let _ = kv.values.f_view(rows)?.f_index_select_out(&values, 0, flat)?;
        Ok((keys, values))
    }

    /// Scratch buffer `which` seen as `(n, head_dim)`, grown with headroom when too small: a
    /// decode step gathers a little more than the one before, and growing to the exact size
    /// would allocate afresh at every step.
    fn buffer(&mut self, which: usize, n: i64) -> Result<Tensor, ModelError> {
        let needed = n * self.head_dim;
        let buffer = match &self.scratch[which] {
            Some(buffer) if buffer.numel() as i64 >= needed => buffer.shallow_clone(),
            _ => {
                let grown = Tensor::f_empty([needed + needed / 2], (self.kind, self.device))?;
                self.scratch[which] = Some(grown.shallow_clone());
                grown
            }
        };
        Ok(buffer.f_narrow(0, 0, needed)?.f_view([n, self.head_dim])?)
    }

    /// Writes keys and values, each `(heads * n, head_dim)` head-major, at `flat (heads * n)`.
    pub fn write(&mut self, layer: usize, flat: &Tensor, keys: &Tensor, values: &Tensor) -> Result<(), ModelError> {
        let rows = [self.heads * self.capacity, self.head_dim];
        let kv = &mut self.layers[layer];
        let _ = kv.keys.f_view(rows)?.f_index_copy_(0, flat, keys)?;
        let _ = kv.values.f_view(rows)?.f_index_copy_(0, flat, values)?;
        Ok(())
    }
}

/// One item's beams in the pool: its context slots, and for each beam the slots of its
/// generated path.
#[derive(Debug, Clone)]
pub struct PooledItem {
    context: Vec<i64>,
    beams: usize,
    steps: usize,
    /// Per beam, the slots of its committed steps.
    paths: Vec<Vec<i64>>,
    /// The step being computed: one slot per row, taken by `take_step_slots`.
    pending: Vec<i64>,
    /// Generated slots still referenced by some path (released with the item).
    owned: Vec<i64>,
}

impl PooledItem {
    pub fn new(context: Vec<i64>, beams: usize) -> Self {
        Self { context, beams, steps: 0, paths: vec![Vec::new(); beams], pending: Vec::new(), owned: Vec::new() }
    }

    pub fn beams(&self) -> usize {
        self.beams
    }

    pub fn context_len(&self) -> usize {
        self.context.len()
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn context(&self) -> &[i64] {
        &self.context
    }

    /// Row `row`'s slots for the step being computed: its path, then its new slot.
    pub fn row_slots(&self, row: usize) -> impl Iterator<Item = i64> + '_ {
        self.paths[row].iter().copied().chain(self.pending.get(row).copied())
    }

    pub fn pending(&self) -> &[i64] {
        &self.pending
    }

    /// Takes this step's slots, one per row, from the pool (again after an uncommitted step).
    pub fn take_step_slots(&mut self, pool: &mut KvPool) -> Result<(), ModelError> {
        self.abandon_step(pool);
        self.pending = pool.alloc(self.beams)?;
        Ok(())
    }

    /// Forgets a computed step that will not be committed, giving its slots back.
    pub fn abandon_step(&mut self, pool: &mut KvPool) {
        pool.release(std::mem::take(&mut self.pending));
    }

    /// Commits the step just computed: new beam `j` continues old row `parents[j]`. The new
    /// slots no beam continues are given back at once.
    pub fn reorder(&mut self, parents: &[usize], pool: &mut KvPool) {
        let pending = std::mem::take(&mut self.pending);
        self.paths = parents
            .iter()
            .map(|&parent| {
                let mut path = self.paths[parent].clone();
                path.push(pending[parent]);
                path
            })
            .collect();
        let mut kept = vec![false; pending.len()];
        parents.iter().for_each(|&p| kept[p] = true);
        for (slot, kept) in pending.into_iter().zip(kept) {
            if kept {
                self.owned.push(slot);
            } else {
                pool.release([slot]);
            }
        }
        self.steps += 1;
    }

    /// Gives every slot of this item back to the pool.
    pub fn release(self, pool: &mut KvPool) {
        pool.release(self.context.into_iter().chain(self.owned).chain(self.pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_the_pool_grows_keeping_its_contents() {
        let mut pool = KvPool::new(1, 2, 3, 16, Kind::Float, Device::Cpu).expect("pool");
        let a = pool.alloc(3).expect("alloc");
        assert_eq!(a, vec![1, 2, 3], "slot 0 is the pad slot");
        let idx = Tensor::from_slice(&a);
        let keys = Tensor::ones([6, 3], (Kind::Float, Device::Cpu));
        pool.write(0, &pool.flat_index(&idx).expect("flat"), &keys, &(&keys * 2.0)).expect("write");
        pool.release(a.clone());
        assert_eq!(pool.alloc(3).expect("alloc"), a, "released slots come back first");
        let before = pool.capacity();
        let many = pool.alloc(before).expect("grow");
        assert!(pool.capacity() >= 2 * before);
        assert_eq!(many.len(), before);
        let values = pool.layer(0).values.index_select(1, &idx);
        assert_eq!(f64::try_from(values.sum(Kind::Double)).expect("scalar"), 2.0 * 18.0);
        let pad = pool.layer(0).keys.select(1, PAD_SLOT).abs().sum(Kind::Double);
        assert_eq!(f64::try_from(pad).expect("scalar"), 0.0);
    }

    #[test]
    fn reorder_follows_parents_and_frees_unchosen_slots() {
        let mut pool = KvPool::new(1, 1, 1, 16, Kind::Float, Device::Cpu).expect("pool");
        let context = pool.alloc(2).expect("context");
        let mut item = PooledItem::new(context, 3);
        item.take_step_slots(&mut pool).expect("slots");
        let first = item.pending().to_vec();
        item.reorder(&[1, 1, 0], &mut pool);
        assert_eq!(item.row_slots(0).collect::<Vec<_>>(), vec![first[1]]);
        assert_eq!(item.row_slots(2).collect::<Vec<_>>(), vec![first[0]]);
        assert_eq!(pool.used(), 1 + 2 + 2, "the slot no beam continued is free again");
        item.take_step_slots(&mut pool).expect("slots");
        item.release(&mut pool);
        assert_eq!(pool.used(), 1);
    }
}
