//! loralib's `MergedLinear` on `c_attn` (`enable_lora=[True, False, True]`,
//! `fan_in_fan_out=True`), folded into the base weight once at load time.

use tch::Tensor;

use super::ModelError;

/// Returns `weight + scaling * delta`, where `weight` is `(n_embd, 3 n_embd)` (Conv1D layout)
/// and `delta` adds `(B_q A_q)^T` to the query columns and `(B_v A_v)^T` to the value columns;
/// keys get no LoRA. `lora_a` is `(2r, n_embd)` and `lora_b` is `(2 n_embd, r)`, grouped as
/// loralib's grouped conv1d groups them: first the query pair, then the value pair.
pub fn merge_lora_into_c_attn(
    weight: &Tensor,
    lora_a: &Tensor,
    lora_b: &Tensor,
    scaling: f64,
) -> Result<Tensor, ModelError> {
    let n_embd = weight.size()[0];
    let r = lora_a.size()[0] / 2;
    let merged = weight.f_detach_copy()?;
    for (group, column_block) in [(0, 0), (1, 2)] {
        let a = lora_a.f_narrow(0, group * r, r)?;
        let b = lora_b.f_narrow(0, group * n_embd, n_embd)?;
        add_low_rank(&merged, column_block * n_embd, &a, &b, scaling)?;
    }
    Ok(merged)
}

/// Adds `scaling (B A)^T` to the columns `column..column + out` of a Conv1D `weight (in, *)`,
/// in place; `a` is `(r, in)` and `b` `(out, r)`. Every LoRA merge (loralib at load, adapters)
/// goes through here, so they round alike.
pub fn add_low_rank(weight: &Tensor, column: i64, a: &Tensor, b: &Tensor, scaling: f64) -> Result<(), ModelError> {
    let out = b.size()[0];
    // (out, r) @ (r, in) = (out, in); Conv1D stores (in, out).
    let delta = b.f_matmul(a)?.f_transpose(0, 1)?.f_mul_scalar(scaling)?;
    let mut columns = weight.f_narrow(1, column, out)?;
    let updated = columns.f_add(&delta)?;
    columns.f_copy_(&updated)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The merge equals loralib's unmerged forward: `x W + s * x (zero_pad(conv(A, B)))^T`.
    #[test]
    fn merged_weight_equals_unmerged_lora_forward() {
        let _rng = crate::model::hold_seeded_rng(7);
        let (e, r, s) = (8i64, 2i64, 4.0);
        let opts = (Kind::Double, Device::Cpu);
        let weight = Tensor::randn([e, 3 * e], opts);
        let lora_a = Tensor::randn([2 * r, e], opts);
        let lora_b = Tensor::randn([2 * e, r], opts);
        let x = Tensor::randn([5, e], opts);

        let merged = merge_lora_into_c_attn(&weight, &lora_a, &lora_b, s).expect("merge");
        let fast = x.matmul(&merged);

        // Reference computation, written the loralib way: grouped conv1d then zero padding.
        let delta_w =
            lora_a.unsqueeze(0).conv1d(&lora_b.unsqueeze(-1), None::<Tensor>, [1], [0], [1], 2).squeeze_dim(0);
        let padded = Tensor::zeros([3 * e, e], opts);
        padded.narrow(0, 0, e).copy_(&delta_w.narrow(0, 0, e));
        padded.narrow(0, 2 * e, e).copy_(&delta_w.narrow(0, e, e));
        let slow = x.matmul(&weight) + x.matmul(&padded.transpose(0, 1)) * s;

        let diff = f64::try_from((fast - slow).abs().max()).expect("scalar");
        assert!(diff < 1e-12, "max difference {diff}");
        // Key columns are untouched.
        assert!(merged.narrow(1, e, e).equal(&weight.narrow(1, e, e)));
    }
}
