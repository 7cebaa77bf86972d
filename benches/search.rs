//! The search's CPU-side hot paths: n-gram banning over beam histories, and the beam reorder
//! after top-k (lorabeam rewrites paths; the reference's `_reorder_cache` copies the whole
//! padded cache, measured alongside).

mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lorabeam_worker::generation::NgramTable;
use lorabeam_worker::model::{GroupCache, LayerKv};
use tch::{Device, Kind, Tensor};

fn histories(beams: usize, len: usize) -> Vec<Vec<u32>> {
    let mut seed = 42u64;
    (0..beams)
        .map(|_| {
            (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 59) as u32 % 6
                })
                .collect()
        })
        .collect()
}

fn ngram_banning(c: &mut Criterion) {
    let mut group = c.benchmark_group("ngram_banning");
    let n = 4;
    let hist = histories(320, 64);
    let tables: Vec<NgramTable> = hist
        .iter()
        .map(|h| {
            let mut t = NgramTable::default();
            (1..=h.len()).for_each(|i| t.push(&h[..i], n));
            t
        })
        .collect();
    group.throughput(Throughput::Elements(320));
    group.bench_function("banned_tokens_320_beams_len64", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            for (t, h) in tables.iter().zip(&hist) {
                t.banned_into(h, n, &mut out);
            }
            out.len()
        })
    });
    group.bench_function("extend_320_beams_len64", |b| {
        b.iter(|| {
            tables
                .iter()
                .zip(&hist)
                .map(|(t, h)| {
                    let mut child = t.clone();
                    child.push(h, n);
                    child
                })
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

fn cache_reorder(c: &mut Criterion) {
    support::set_threads();
    let (beams, heads, head_dim, layers) = (10usize, 12i64, 64i64, 12usize);
    let mut group = c.benchmark_group("cache_reorder_gpt2_sm_beam10");
    let context = || {
        (0..layers)
            .map(|_| LayerKv {
                keys: Tensor::zeros([heads, 32, head_dim], (Kind::Float, Device::Cpu)),
                values: Tensor::zeros([heads, 32, head_dim], (Kind::Float, Device::Cpu)),
            })
            .collect::<Vec<_>>()
    };
    let parents: Vec<usize> = (0..beams).map(|i| (i * 7 + 3) % beams).collect();
    group.bench_function("lorabeam_paths_t32", |b| {
        b.iter_batched_ref(
            || {
                let mut cache = GroupCache::new(context(), beams, 64).expect("cache");
                (0..32).for_each(|_| cache.reorder(&parents));
                cache
            },
            |cache| cache.reorder(&parents),
            criterion::BatchSize::PerIteration,
        )
    });
    let full: Vec<Tensor> = (0..2 * layers)
        .map(|_| Tensor::zeros([beams as i64, heads, 512, head_dim], (Kind::Float, Device::Cpu)))
        .collect();
    let index = Tensor::from_slice(&parents.iter().map(|&p| p as i64).collect::<Vec<_>>());
    group.bench_function("reference_index_select_seq512", |b| {
        b.iter(|| full.iter().map(|t| t.index_select(0, &index)).collect::<Vec<_>>())
    });
    group.finish();
}

criterion_group!(benches, ngram_banning, cache_reorder);
criterion_main!(benches);
