//! The running batch's default size: how many beam rows decode together, and how much KV cache
//! they may hold.
//!
//! On the CPU the row budget is a measured throughput plateau: a decode step of gpt2.sm runs at
//! about 67% of the f32 matmul peak at 80 rows and 72% at 320 (2 cores), and more rows only add
//! memory (each row's logits alone are 200 KB in f32). On CUDA the rows are not capped at all:
//! the KV budget bounds the batch, taken from the device's free memory once the weights are
//! loaded, so a whole E2E test set (630 items × 10 beams) runs as one batch.

use tch::Device;

use crate::model::Gpt2;

/// Default row budget on the CPU (see the module's comment).
pub const CPU_DEFAULT_ROWS: usize = 320;

/// Share of the device's free memory that the KV budget takes by default; the rest is left for
/// activations (logits of every row, the prefill, the attention gathers) and the allocator.
const CUDA_KV_SHARE: f64 = 0.7;

/// What bounds a running batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBudget {
    pub max_rows: usize,
    pub kv_bytes: Option<usize>,
}

/// Where a default came from, for the run's summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetReport {
    pub budget: BatchBudget,
    pub how: String,
}

/// The batch budget for `model`: the flags' values when given (`max_kv_mib` 0 means no KV
/// limit), else the defaults described in the module's comment.
pub fn batch_budget(model: &Gpt2, max_rows: Option<usize>, max_kv_mib: Option<usize>) -> BudgetReport {
    let mib = |b: usize| b >> 20;
    let (kv_bytes, kv_how) = match (max_kv_mib, model.device()) {
        (Some(0), _) => (None, "no KV limit (--max-kv-mib 0)".to_string()),
        (Some(m), _) => (Some(m << 20), format!("KV budget {m} MiB (--max-kv-mib)")),
        (None, Device::Cpu) => (None, "no KV limit on the CPU".to_string()),
        (None, Device::Cuda(index)) => match super::device_memory::cuda_free_bytes(index) {
            Some((free, total)) => {
                let bytes = (free as f64 * CUDA_KV_SHARE) as usize;
                let how = format!(
                    "KV budget {} MiB = {:.0}% of the {} MiB free of {} MiB on cuda:{index}",
                    mib(bytes),
                    CUDA_KV_SHARE * 100.0,
                    mib(free),
                    mib(total)
                );
                (Some(bytes), how)
            }
            None => (Some(8 << 30), "KV budget 8192 MiB (free device memory unknown: nvidia-smi failed)".into()),
        },
        (None, other) => (None, format!("no KV limit on {other:?}")),
    };
    let (rows, rows_how) = match (max_rows, model.device()) {
        (Some(rows), _) => (rows, format!("{rows} rows (--max_rows)")),
        (None, Device::Cpu) => (CPU_DEFAULT_ROWS, format!("{CPU_DEFAULT_ROWS} rows (CPU default)")),
        (None, _) => (usize::MAX, "rows not capped".to_string()),
    };
    BudgetReport { budget: BatchBudget { max_rows: rows, kv_bytes }, how: format!("{rows_how}, {kv_how}") }
}
