//! Length-normalised hypothesis scores, computed in the same float width as the reference
//! computes them (`beam_scores / cur_len ** length_penalty` on a tensor of the score dtype).

/// The float width beam scores live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreWidth {
    F32,
    F64,
}

impl ScoreWidth {
    pub fn from_kind(kind: tch::Kind) -> Self {
        if kind == tch::Kind::Double {
            Self::F64
        } else {
            Self::F32
        }
    }

    /// `sum / len ** length_penalty`, where the power is a Python float (f64) that the tensor
    /// division rounds to the score width first.
    pub fn normalize(self, sum: f64, len: usize, length_penalty: f64) -> f64 {
        let divisor = (len as f64).powf(length_penalty);
        match self {
            Self::F64 => sum / divisor,
            Self::F32 => ((sum as f32) / (divisor as f32)) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_rounds_like_a_float_tensor() {
        let sum = -7.123_457_f32 as f64;
        let f32_score = ScoreWidth::F32.normalize(sum, 7, 0.8);
        assert_eq!(f32_score, ((sum as f32) / (7f64.powf(0.8) as f32)) as f64);
        assert_eq!(ScoreWidth::F64.normalize(-2.0, 4, 0.5), -1.0);
    }
}
