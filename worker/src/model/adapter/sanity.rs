//! The bounds an adapter must keep to be believed, and one check per bound. A value beyond them
//! is no trained LoRA: decoding it would complete with garbage rather than fail, so it is refused.
//!
//! Measured on real adapters (largest absolute entry of `s (B A)`, the update a matrix gets):
//! peft's own adapters made by `make_peft_adapter.py` 0.28 (`--random`, rsLoRA on four modules)
//! and 1.99 (`--from-loralib`, the conformance fixture's LoRA, whose `lora_B` was inflated with
//! noise so that it visibly changes outputs), the test adapters of `make_peft_adapters.py` 2.0
//! (`all4`) and 0.82 (`regex_bin`); the fixture's loralib `lora_only.pt` 1.99. GPT-2's own
//! weights are O(1) (the fixture's largest 0.44, `ln_f` 1.5). Their alphas are 5 to 64 and
//! their scalings 2 to 8.5.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::model::ModelError;

/// The most bytes of `adapter_config.json` lorabeam reads (1 MiB): peft writes about 1 KiB, and
/// a larger file is refused by its size before any of it is read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The most entries each of `target_modules`, `exclude_modules`, `rank_pattern` and
/// `alpha_pattern` may have: gpt2-xl has 48 × 4 = 192 matrices an adapter can change, and the
/// bound keeps the matching of a 1 MiB config to a few thousand small regexes.
pub const MAX_CONFIG_ENTRIES: usize = 1024;

/// The largest compiled size of one config regex (`regex`'s size limit, and its lazy DFA's):
/// a module name pattern compiles to a few KiB; this one refuses repetition bombs.
pub const MAX_REGEX_BYTES: usize = 1 << 18;

/// The largest `|lora_alpha|` (or `alpha_pattern` value, or `--lora_alpha` for a loralib
/// adapter): real ones are 1 to a few hundred (often 2 r); 1e4 leaves a wide margin.
pub const MAX_LORA_ALPHA: f64 = 1e4;

/// The largest `|scaling|` (`alpha / r`, or `alpha / √r` with `use_rslora`): real ones are
/// about 1 to 10 (measured 2 to 8.5).
pub const MAX_SCALING: f64 = 1e3;

/// The largest absolute entry of the update `s (B A)` an adapted matrix may get. GPT-2's
/// weights are O(1) and a trained LoRA's update is far smaller (the largest measured, on
/// adapters inflated on purpose for tests, is 2.0: 500 times under the bound); an entry of 1e3
/// swamps the whole base model, and one that overflows is not a number.
pub const MAX_UPDATE_ENTRY: f64 = 1e3;

/// A number for a message: plain when of ordinary size, in exponent form otherwise.
pub(super) fn show(x: f64) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// `alpha` (`lora_alpha`, an `alpha_pattern` value) is finite and within `±MAX_LORA_ALPHA`.
pub(super) fn check_alpha(alpha: f64) -> Result<(), String> {
    if alpha.is_finite() && alpha.abs() <= MAX_LORA_ALPHA {
        Ok(())
    } else {
        Err(format!("{} is beyond the bound ±{} (real ones are 1 to a few hundred)", show(alpha), show(MAX_LORA_ALPHA)))
    }
}

/// `--lora_alpha` for a loralib adapter: positive (loralib stores no alpha, so it is the
/// worker's flag) and within the bound.
pub(crate) fn check_loralib_alpha(alpha: f64) -> Result<(), String> {
    if alpha.is_nan() || alpha <= 0.0 {
        return Err(format!("{} must be positive (loralib checkpoints do not store alpha)", show(alpha)));
    }
    check_alpha(alpha)
}

/// A rank is at least 1 and at most `limit`, the smaller dimension of the matrix it adapts (a
/// larger rank is no low-rank update).
pub(super) fn check_rank(r: i64, limit: i64) -> Result<(), String> {
    if (1..=limit).contains(&r) {
        Ok(())
    } else {
        Err(format!("rank {r} must be at least 1 and at most {limit}, the matrix's smaller dimension"))
    }
}

/// The scaling of the update, `alpha / r` (`alpha / √r` with rsLoRA), refused unless finite
/// and within `±MAX_SCALING`.
pub(crate) fn scaling(alpha: f64, r: i64, rslora: bool) -> Result<f64, String> {
    let scaling = if rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
    let rule = if rslora { "alpha/√r" } else { "alpha/r" };
    if scaling.is_finite() && scaling.abs() <= MAX_SCALING {
        Ok(scaling)
    } else {
        Err(format!(
            "scaling {rule} = {}/{} = {} is beyond the bound ±{} (real ones are about 1 to 10)",
            show(alpha),
            r,
            show(scaling),
            show(MAX_SCALING)
        ))
    }
}

/// An upper bound of `max |s (B A)_ij|` without the product: each entry is a row of `B` dotted
/// with a column of `A`, at most the product of their norms (Cauchy-Schwarz). `a (r, in)`,
/// `b (out, r)`, f64.
pub(super) fn update_bound(scaling: f64, a: &Tensor, b: &Tensor) -> Result<f64, ModelError> {
    let b_rows = f64::try_from(b.f_square()?.f_sum_dim_intlist(1, false, None)?.f_max()?)?.sqrt();
    let a_columns = f64::try_from(a.f_square()?.f_sum_dim_intlist(0, false, None)?.f_max()?)?.sqrt();
    Ok(scaling.abs() * b_rows * a_columns)
}

/// `max |s (B A)_ij|`, the largest entry of the update, computed exactly in f64 (NaN when an
/// entry is: infinities of both signs summed).
pub(super) fn largest_update_entry(scaling: f64, a: &Tensor, b: &Tensor) -> Result<f64, ModelError> {
    Ok(f64::try_from(b.f_matmul(a)?.f_mul_scalar(scaling)?.f_abs()?.f_max()?)?)
}

/// `None` when the update `s (B A)` is finite and its largest entry at most
/// `MAX_UPDATE_ENTRY`; otherwise `Some(largest entry)`. The product is computed only when the
/// cheap bound does not already settle it (a rank-1024 adapter's products take seconds), so
/// the answer is always the exact product's.
pub(crate) fn update_beyond_bound(scaling: f64, a: &Tensor, b: &Tensor) -> Result<Option<f64>, ModelError> {
    if update_bound(scaling, a, b)? <= MAX_UPDATE_ENTRY {
        return Ok(None);
    }
    let largest = largest_update_entry(scaling, a, b)?;
    // NaN is beyond any bound.
    Ok((largest.is_nan() || largest > MAX_UPDATE_ENTRY).then_some(largest))
}

/// Refuses a merge at load (`--init_checkpoint --lora_dim R`) that no trained LoRA would make,
/// by the adapters' bounds: `--lora_alpha` not positive and finite within ±1e4, a scaling
/// beyond ±1e3, or a q or v update with an entry that is not finite or beyond 1e3.
/// `lora_a (2r, n_embd)` and `lora_b (2 n_embd, r)` as for `model::lora::merge_lora_into_c_attn`.
pub fn check_lora_merge(
    path: &Path,
    layer: usize,
    lora_a: &Tensor,
    lora_b: &Tensor,
    alpha: f64,
) -> Result<(), ModelError> {
    let beyond =
        |what: &str, detail: String| ModelError::LoraBeyondBound { path: path.into(), what: what.into(), detail };
    check_loralib_alpha(alpha).map_err(|d| beyond("--lora_alpha", d))?;
    let r = lora_a.size().first().copied().unwrap_or(0) / 2;
    let n_embd = lora_b.size().first().copied().unwrap_or(0) / 2;
    let scaling = scaling(alpha, r, false).map_err(|d| beyond("--lora_alpha / --lora_dim", d))?;
    let (lora_a, lora_b) = (lora_a.f_to_kind(Kind::Double)?, lora_b.f_to_kind(Kind::Double)?);
    for (group, part) in [(0, "q"), (1, "v")] {
        let a = lora_a.f_narrow(0, group * r, r)?;
        let b = lora_b.f_narrow(0, group * n_embd, n_embd)?;
        if let Some(largest) = update_beyond_bound(scaling, &a, &b)? {
            let detail = format!(
                "an entry of magnitude {largest:e}, beyond the bound {MAX_UPDATE_ENTRY:e}: no trained LoRA comes near it"
            );
            return Err(beyond(&format!("the update of `h.{layer}.attn.c_attn` ({part}, scaling × B·A)"), detail));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn alphas_are_finite_and_bounded() {
        for ok in [1.0, 32.0, -16.0, 0.0, MAX_LORA_ALPHA] {
            assert_eq!(check_alpha(ok), Ok(()), "{ok}");
        }
        for bad in [1e300, 1e38, -2e4, f64::NAN, f64::INFINITY] {
            let err = check_alpha(bad).expect_err("refused");
            assert!(err.contains(&show(bad)) && err.contains("10000"), "{err}");
        }
        assert_eq!(check_loralib_alpha(32.0), Ok(()));
        for bad in [0.0, -1.0, f64::NAN, 1e300] {
            assert!(check_loralib_alpha(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranks_are_positive_and_at_most_the_smaller_dimension() {
        assert_eq!(check_rank(1, 768), Ok(()));
        assert_eq!(check_rank(768, 768), Ok(()));
        for bad in [0, -3, 769, i64::MAX] {
            let err = check_rank(bad, 768).expect_err("refused");
            assert!(err.contains(&format!("rank {bad}")) && err.contains("768"), "{err}");
        }
    }

    #[test]
    fn scalings_follow_the_rule_and_are_bounded() {
        assert_eq!(scaling(32.0, 4, false), Ok(8.0));
        assert_eq!(scaling(24.0, 4, true), Ok(12.0));
        let err = scaling(5e3, 1, false).expect_err("refused");
        assert!(err.contains("alpha/r = 5000/1 = 5000") && err.contains("1000"), "{err}");
        assert!(scaling(f64::MAX, 1, true).is_err());
    }

    #[test]
    fn the_update_is_checked_exactly() {
        let opts = (Kind::Double, Device::Cpu);
        // B A = [[1, 2], [3, 4]] (b (2, 1), a (1, 2)); scaled by 100 its largest entry is 800.
        let a = Tensor::from_slice(&[1.0f64, 2.0]).view([1, 2]);
        let b = Tensor::from_slice(&[1.0f64, 4.0]).view([2, 1]);
        assert_eq!(largest_update_entry(100.0, &a, &b).ok(), Some(800.0));
        assert!(update_bound(100.0, &a, &b).expect("bound") >= 800.0);
        assert_eq!(update_beyond_bound(100.0, &a, &b).ok(), Some(None));
        assert_eq!(update_beyond_bound(-200.0, &a, &b).ok(), Some(Some(1600.0)));
        // The norms' bound exceeds the limit, the exact product does not: accepted.
        let a = Tensor::from_slice(&[30.0f64, -30.0]).view([2, 1]);
        let b = Tensor::from_slice(&[30.0f64, 30.0]).view([1, 2]);
        assert!(update_bound(1.0, &a, &b).expect("bound") > MAX_UPDATE_ENTRY);
        assert_eq!(update_beyond_bound(1.0, &a, &b).ok(), Some(None));
        // Finite factors whose product overflows.
        let huge = Tensor::full([1, 4], 1e200, opts);
        let found = update_beyond_bound(1.0, &huge, &huge.transpose(0, 1)).expect("checked");
        assert_eq!(found, Some(f64::INFINITY));
    }

    #[test]
    fn a_merge_at_load_keeps_the_adapters_bounds() {
        let opts = (Kind::Float, Device::Cpu);
        let (e, r) = (4i64, 2i64);
        let a = Tensor::full([2 * r, e], 0.1, opts);
        let b = Tensor::full([2 * e, r], 0.1, opts);
        let path = Path::new("lora_full.pt");
        assert!(check_lora_merge(path, 0, &a, &b, 32.0).is_ok());
        let err = check_lora_merge(path, 0, &a, &b, 1e300).expect_err("alpha refused").to_string();
        assert!(err.starts_with("lora_full.pt: --lora_alpha: 1e300 is beyond"), "{err}");
        // Only the v half of lora_B is inflated: the message names the v update of layer 3.
        let inflated = Tensor::cat(&[Tensor::full([e, r], 0.1, opts), Tensor::full([e, r], 1e6, opts)], 0);
        let err = check_lora_merge(path, 3, &a, &inflated, 32.0).expect_err("update refused").to_string();
        assert!(err.contains("`h.3.attn.c_attn` (v, scaling × B·A)") && err.contains("beyond the bound 1e3"), "{err}");
    }
}
