//! One batched decode step (forward pass with LM head) of a gpt2.sm-shaped model at 10, 80 and
//! 320 beam rows, next to an f32 matmul peak measured in the same run. Criterion reports
//! both as elements/s = FLOP/s, so their ratio is the step's matmul efficiency.

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BEAM: usize = 10;
const CONTEXT: usize = 32;
const GENERATED: usize = 16;

fn decode_step(c: &mut Criterion) {
    support::set_threads();
    let model = support::gpt2_small();
    let mut group = c.benchmark_group("decode_step_gpt2_sm");
    group.sample_size(10);
    let n = 2048;
    group.throughput(Throughput::Elements(2 * n * n * n));
    let a = tch::Tensor::randn([n as i64, n as i64], (tch::Kind::Float, tch::Device::Cpu));
    group.bench_function("matmul_peak_2048", |b| b.iter(|| a.matmul(&a)));
    for rows in [10usize, 80, 320] {
        let (mut items, mut kv) = support::running_batch(&model, rows / BEAM, BEAM, CONTEXT, GENERATED);
        let tokens: Vec<i64> = (0..rows as i64).collect();
        let flops = rows as f64 * model.flops_per_token(CONTEXT + GENERATED + 1);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_with_input(BenchmarkId::new("rows", rows), &rows, |b, _| {
            b.iter(|| support::step(&model, &tokens, &mut items, &mut kv))
        });
    }
    group.finish();
}

criterion_group!(benches, decode_step);
criterion_main!(benches);
