//! End-to-end decoding throughput on E2E test data with the README configuration (beam 10,
//! length_penalty 0.8, no_repeat_ngram_size 4, eval_len 64, seq_len 512), on a gpt2.sm-shaped
//! random GPT-2 + LoRA (r=4, alpha 32) checkpoint that this bench writes in gpt2_ft.py's
//! format. Prints a table: items/s, generated tokens/s, and model FLOP/s as a fraction of the
//! f32 matmul peak measured in the same run.
//!
//!   cargo bench --bench e2e                   # first 32 lines of e2e_test_public.jsonl
//!   LORABEAM_BENCH_FULL=1 cargo bench --bench e2e   # plus the whole e2e_test.jsonl (~25 min)
//!
//! Each data set runs on both attention paths, batched (the default) and per-group (the engine
//! as it was before batched attention), side by side in the same run.
//! `LORABEAM_BENCH_ROWS` sets the row budget (default: the CPU default, 320),
//! `LORABEAM_BENCH_THREADS` the threads, `LORABEAM_BENCH_ATTENTION` the paths (default
//! "batched per-group").

mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lorabeam_core::dedup::DedupPlan;
use lorabeam_core::read_records;
use lorabeam_core::DecodeParams;
use lorabeam_worker::checkpoint::save_torch_checkpoint;
use lorabeam_worker::generation::{Engine, WorkItem};
use lorabeam_worker::model::{
    synthetic_checkpoint, AdapterMath, AttentionPath, CheckpointPaths, Gpt2, Gpt2Config, ModelCard, Precision,
};
use lorabeam_worker::{load_model, ModelSpec};

fn checkpoint() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = dir.join("gpt2-sm-lora-r4.pt");
    if !path.exists() {
        std::fs::create_dir_all(&dir)?;
        let config = Gpt2Config::from_card(ModelCard::Small);
        save_torch_checkpoint(&path, &synthetic_checkpoint(&config, support::LORA, 1234))?;
    }
    Ok(path)
}

struct Row {
    name: String,
    lines: usize,
    items: usize,
    seconds: f64,
    tokens: usize,
    flops: f64,
}

fn decode(model: &Gpt2, data: &Path, limit: usize, rows: usize) -> anyhow::Result<Row> {
    let params = DecodeParams {
        beam: 10,
        eval_len: 64,
        seq_len: 512,
        length_penalty: 0.8,
        no_repeat_ngram_size: 4,
        extra_eos_token_ids: vec![628],
        ..DecodeParams::default()
    }
    .validate(model.config().limits())?;
    let mut records = read_records(data, model.config().vocab_size)?;
    records.truncate(limit);
    let plan = DedupPlan::build(records.iter().map(|r| params.truncate_context(&r.context).to_vec()));
    let items = plan.distinct.iter().enumerate().map(|(key, c)| WorkItem {
        key,
        context: c.clone(),
        first_step_context: None,
        adapter: None,
    });
    let start = Instant::now();
    let stats = Engine::new(model, params, rows).run(items, |_, _| {})?;
    let seconds = start.elapsed().as_secs_f64();
    let file = data.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let name = format!("{file} (first {}), {}", records.len(), model.attention());
    Ok(Row {
        name,
        lines: records.len(),
        items: plan.distinct.len(),
        seconds,
        tokens: stats.generated_tokens,
        flops: stats.flops,
    })
}

fn main() -> anyhow::Result<()> {
    let threads = support::set_threads();
    let rows = std::env::var("LORABEAM_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(lorabeam_worker::generation::CPU_DEFAULT_ROWS);
    let paths = std::env::var("LORABEAM_BENCH_ATTENTION").unwrap_or_else(|_| "batched per-group".into());
    let paths = paths.split_whitespace().map(str::parse).collect::<Result<Vec<AttentionPath>, _>>()?;
    let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/data");
    let spec = ModelSpec {
        checkpoints: CheckpointPaths { init: Some(checkpoint()?), base: None },
        model_card: ModelCard::Small,
        model_config: None,
        lora: support::LORA,
        precision: Precision::F32,
        device: "cpu".into(),
        threads,
        attention: AttentionPath::Batched,
        adapter_math: AdapterMath::default(),
    };
    let models = paths
        .iter()
        .map(|&attention| load_model(&ModelSpec { attention, ..spec.clone() }))
        .collect::<Result<Vec<_>, _>>()?;
    // The peak is the best of many runs, before and after decoding, so a busy moment on a
    // shared machine does not understate it (which would overstate our fraction of it).
    let mut peak = support::matmul_peak_flops(2048, 10);
    let mut results = Vec::new();
    for model in &models {
        results.push(decode(model, &conformance.join("e2e_test_public.jsonl"), 32, rows)?);
    }
    if std::env::var_os("LORABEAM_BENCH_FULL").is_some() {
        for model in &models {
            results.push(decode(model, &conformance.join("e2e_test.jsonl"), usize::MAX, rows)?);
        }
    }
    peak = peak.max(support::matmul_peak_flops(2048, 10));
    println!("gpt2.sm-shaped random GPT-2 + LoRA r=4, f32, CPU, {threads} threads, row budget {rows}");
    println!("f32 matmul peak (2048^3, best of 20 before and after): {:.1} GFLOP/s", peak / 1e9);
    println!(
        "| {:<46} | {:>5} | {:>5} | {:>8} | {:>8} | {:>8} | {:>9} | {:>7} |",
        "data", "lines", "items", "seconds", "lines/s", "items/s", "tokens/s", "of peak"
    );
    for r in &results {
        println!(
            "| {:<46} | {:>5} | {:>5} | {:>8.1} | {:>8.3} | {:>8.3} | {:>9.0} | {:>6.1}% |",
            r.name,
            r.lines,
            r.items,
            r.seconds,
            r.lines as f64 / r.seconds,
            r.items as f64 / r.seconds,
            r.tokens as f64 / r.seconds,
            100.0 * r.flops / r.seconds / peak
        );
    }
    Ok(())
}
