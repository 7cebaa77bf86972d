//! GPT-2's building blocks, written op for op as the reference's `model.py` computes them, so
//! that float rounding follows the same path.

use tch::Tensor;

use super::weights::{LayerNorm, Linear};
use super::ModelError;

/// TF-style layer norm (epsilon inside the square root), as `model.py`'s `LayerNorm`. The same
/// operations in the same order, done in place where the reference allocates.
pub fn layer_norm(x: &Tensor, ln: &LayerNorm, eps: f64) -> Result<Tensor, ModelError> {
    let mean = x.f_mean_dim(-1, true, None)?;
    let mut normed = x.f_sub(&mean)?;
    let mut std = normed.f_pow_tensor_scalar(2)?.f_mean_dim(-1, true, None)?;
    let _ = std.f_add_scalar_(eps)?.f_sqrt_()?;
    let _ = normed.f_div_(&std)?;
    // `weight * x + bias`; the product commutes exactly.
    let _ = normed.f_mul_(&ln.weight)?.f_add_(&ln.bias)?;
    Ok(normed)
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, `model.py`'s `gelu`, computed in place on
/// `x` with the reference's operation order (so it rounds the same), allocating one buffer.
pub fn gelu_(x: &mut Tensor) -> Result<(), ModelError> {
    let mut gate = x.f_pow_tensor_scalar(3)?;
    let _ = gate.f_mul_scalar_(0.044715)?.f_add_(x)?.f_mul_scalar_((2.0 / std::f64::consts::PI).sqrt())?;
    let _ = gate.f_tanh_()?.f_add_scalar_(1.0)?;
    let _ = x.f_mul_scalar_(0.5)?.f_mul_(&gate)?;
    Ok(())
}

/// GPT-2's Conv1D: `bias + x @ weight` on rows of `x`.
pub fn linear(x: &Tensor, layer: &Linear) -> Result<Tensor, ModelError> {
    Ok(layer.bias.f_addmm(x, &layer.weight)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn gelu_is_the_tanh_approximation() {
        let x = Tensor::from_slice(&[-3.0f64, -1.0, 0.0, 0.5, 2.0]);
        let mut ours = x.copy();
        gelu_(&mut ours).expect("gelu");
        let torch = x.gelu("tanh");
        let diff = f64::try_from((ours - torch).abs().max()).expect("scalar");
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn layer_norm_matches_torch() {
        let _rng = crate::model::hold_seeded_rng(1);
        let x = Tensor::randn([3, 8], (Kind::Double, Device::Cpu));
        let ln = LayerNorm {
            weight: Tensor::randn([8], (Kind::Double, Device::Cpu)),
            bias: Tensor::randn([8], (Kind::Double, Device::Cpu)),
        };
        let ours = layer_norm(&x, &ln, 1e-5).expect("layer norm");
        let torch = x.layer_norm([8], Some(&ln.weight), Some(&ln.bias), 1e-5, false);
        let diff = f64::try_from((ours - torch).abs().max()).expect("scalar");
        assert!(diff < 1e-12, "{diff}");
    }
}
