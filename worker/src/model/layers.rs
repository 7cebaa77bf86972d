//! GPT-2's building blocks, written op for op as the reference's `model.py` computes them, so
//! that float rounding follows the same path.

use tch::Tensor;

use super::weights::{LayerNorm, Linear};
use super::ModelError;

/// TF-style layer norm (epsilon inside the square root), as `model.py`'s `LayerNorm`.
pub fn layer_norm(x: &Tensor, ln: &LayerNorm, eps: f64) -> Result<Tensor, ModelError> {
    let mean = x.f_mean_dim(-1, true, None)?;
    let centered = x.f_sub(&mean)?;
    let variance = centered.f_pow_tensor_scalar(2)?.f_mean_dim(-1, true, None)?;
    let normed = centered.f_div(&variance.f_add_scalar(eps)?.f_sqrt()?)?;
    Ok(ln.weight.f_mul(&normed)?.f_add(&ln.bias)?)
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, `model.py`'s `gelu`.
pub fn gelu(x: &Tensor) -> Result<Tensor, ModelError> {
    let cubic = x.f_pow_tensor_scalar(3)?.f_mul_scalar(0.044715)?;
    let inner = x.f_add(&cubic)?.f_mul_scalar((2.0 / std::f64::consts::PI).sqrt())?;
    let gate = inner.f_tanh()?.f_add_scalar(1.0)?;
    Ok(x.f_mul_scalar(0.5)?.f_mul(&gate)?)
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
        let ours = gelu(&x).expect("gelu");
        let torch = x.gelu("tanh");
        let diff = f64::try_from((ours - torch).abs().max()).expect("scalar");
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn layer_norm_matches_torch() {
        tch::manual_seed(1);
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
