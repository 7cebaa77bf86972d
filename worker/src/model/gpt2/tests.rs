//! The batched attention path against the per-group one, on a small random model in f64: the
//! same logits (up to summation order) for a batch whose items differ in context length, in
//! steps taken, and in how their beams were reordered, with items joining mid-way.

use tch::{Device, Kind, Tensor};

use crate::model::{
    synthetic_checkpoint, weights_from_tensors, AttentionPath, BatchKv, Gpt2, Gpt2Config, ItemKv, LoraConfig, Precision,
};

const BEAMS: usize = 3;

fn model(attention: AttentionPath, precision: Precision) -> Gpt2 {
    let config =
        Gpt2Config { vocab_size: 97, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, layer_norm_epsilon: 1e-5 };
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let tensors = synthetic_checkpoint(&config, lora, 7);
    let weights = weights_from_tensors(&config, lora, tensors, precision, Device::Cpu).expect("weights");
    Gpt2::new(config, weights, precision, Device::Cpu).with_attention(attention)
}

struct Run {
    model: Gpt2,
    kv: BatchKv,
    items: Vec<ItemKv>,
}

impl Run {
    fn new(attention: AttentionPath, precision: Precision) -> Self {
        let model = model(attention, precision);
        let kv = model.new_batch_kv(None).expect("kv");
        Self { model, kv, items: Vec::new() }
    }

    fn join(&mut self, contexts: &[&[u32]]) -> Tensor {
        let (items, logits) = self.model.prefill(contexts, &mut self.kv, BEAMS, 16).expect("prefill");
        self.items.extend(items);
        logits
    }

    fn step(&mut self, tokens: &[i64], parents: &[Vec<usize>]) -> Tensor {
        let mut refs: Vec<&mut ItemKv> = self.items.iter_mut().collect();
        let logits = self.model.decode_step(tokens, &mut refs, &mut self.kv).expect("decode");
        for (item, parents) in self.items.iter_mut().zip(parents) {
            item.reorder(parents, &mut self.kv).expect("reorder");
        }
        logits
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max().to_kind(Kind::Double)).expect("scalar")
}

#[test]
fn batched_attention_matches_the_per_group_path() {
    let mut batched = Run::new(AttentionPath::Batched, Precision::F64);
    let mut per_group = Run::new(AttentionPath::PerGroup, Precision::F64);
    let first: [&[u32]; 2] = [&[5, 9, 2], &[1, 2, 3, 4, 5, 6, 7]];
    assert!(max_diff(&batched.join(&first), &per_group.join(&first)) < 1e-12, "prefill");
    let later: [&[u32]; 2] = [&[40, 41, 42, 43, 44], &[8]];
    let parent_sets = [[0, 0, 1], [2, 1, 1], [1, 2, 0], [0, 2, 2], [1, 1, 1]];
    for step in 0..5 {
        if step == 2 {
            assert!(max_diff(&batched.join(&later), &per_group.join(&later)) < 1e-12, "later prefill");
        }
        let rows = batched.items.len() * BEAMS;
        let tokens: Vec<i64> = (0..rows as i64).map(|r| (r * 13 + step as i64 * 7) % 97).collect();
        let parents: Vec<Vec<usize>> =
            (0..batched.items.len()).map(|i| parent_sets[(i + step) % parent_sets.len()].to_vec()).collect();
        let (b, p) = (batched.step(&tokens, &parents), per_group.step(&tokens, &parents));
        assert_eq!(b.size(), vec![rows as i64, 97]);
        assert!(max_diff(&b, &p) < 1e-12, "step {step}: {}", max_diff(&b, &p));
    }
    for item in batched.items.drain(..) {
        batched.kv.release(item);
    }
    assert_eq!(batched.kv.pool_slots().map(|(used, _)| used), Some(1), "only the pad slot stays taken");
}

/// The half types run the same path: softmax in f32, values back in the half type.
#[test]
fn batched_attention_runs_in_bf16_close_to_f32() {
    let mut half = Run::new(AttentionPath::Batched, Precision::Bf16);
    let mut full = Run::new(AttentionPath::Batched, Precision::F32);
    let contexts: [&[u32]; 2] = [&[5, 9, 2], &[1, 2, 3, 4]];
    let (h, f) = (half.join(&contexts), full.join(&contexts));
    assert_eq!(h.kind(), Kind::BFloat16);
    let scale = f64::try_from(f.abs().max().to_kind(Kind::Double)).expect("scalar");
    assert!(max_diff(&h.to_kind(Kind::Float), &f) < 0.05 * scale.max(1.0));
    let tokens: Vec<i64> = (0..2 * BEAMS as i64).collect();
    let parents = vec![vec![0, 1, 2]; 2];
    let (h, f) = (half.step(&tokens, &parents), full.step(&tokens, &parents));
    assert!(max_diff(&h.to_kind(Kind::Float), &f) < 0.05 * scale.max(1.0));
}

/// Each run of rows of a mixed projection (two adapters and the base) is bit for bit that run
/// computed alone, in either adapter math: the math couples no run to another. (Runs are
/// multiples of 4 rows here because libtorch's CPU GEMM itself rounds the rows of a partial
/// 4-row tile differently, with or without adapters; whole decodes are compared token for
/// token in `tests/adapters.rs`.)
#[test]
fn a_mixed_projection_computes_each_run_as_alone() {
    use super::AdapterRows;
    use crate::model::{random_adapter, AdaptedModule, AdapterMath, AdapterWeights};
    for math in [AdapterMath::LowRank, AdapterMath::Merged] {
        let model = model(AttentionPath::Batched, Precision::F32).with_adapter_math(math);
        let random = |rank, seed| random_adapter(model.config(), &AdaptedModule::ALL, rank, seed);
        let a = AdapterWeights::prepare(&model, &random(3, 1), "a").expect("a");
        let b = AdapterWeights::prepare(&model, &random(5, 2), "b").expect("b");
        let runs = [(Some(&a), 4i64), (None, 8), (Some(&b), 4), (Some(&a), 12)];
        let mixed = AdapterRows::new(runs);
        for module in AdaptedModule::ALL {
            let base = model.weights().blocks[1].adaptable(module);
            let x = crate::model::seeded(3, || Tensor::randn([28, base.weight.size()[0]], (Kind::Float, Device::Cpu)));
            let out = mixed.linear(1, module, &x, base).expect("mixed");
            let plain = base.bias.addmm(&x, &base.weight);
            let mut offset = 0;
            for (adapter, rows) in runs {
                let part = x.narrow(0, offset, rows);
                let alone = AdapterRows::new([(adapter, rows)]).linear(1, module, &part, base).expect("alone");
                assert!(out.narrow(0, offset, rows).equal(&alone), "{math} {module:?}: rows {offset}.. differ");
                let moved = max_diff(&alone, &plain.narrow(0, offset, rows));
                assert_eq!(adapter.is_none(), moved == 0.0, "{math} {module:?}: rows {offset}.. moved {moved}");
                offset += rows;
            }
        }
    }
}
