//! How rows decoding with an adapter are multiplied: the choice between a batched low-rank
//! update and merged copies of the adapted matrices (`--adapter-math`).

use crate::model::ModelError;

/// How an adapter's update reaches the rows that decode with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterMath {
    /// One base matmul over every row of the pass, then each run of an adapter's rows adds
    /// `(x Aᵀ)(s B)ᵀ`: two small matmuls per run, so mixing adapters costs little more than one
    /// adapter. It rounds like PEFT's unmerged forward, not like a merged model (f64 decodes
    /// alike; f32 may differ in the last bits of a logit).
    #[default]
    LowRank,
    /// Each adapter keeps merged copies of the matrices it adapts, rounded as
    /// `--init_checkpoint` merges loralib, and each run of rows is one matmul with its copy:
    /// bit for bit a merged model, but a mixed batch splits every adapted projection.
    Merged,
}

impl std::str::FromStr for AdapterMath {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "low-rank" => Ok(Self::LowRank),
            "merged" => Ok(Self::Merged),
            other => Err(ModelError::UnknownAdapterMath(other.to_string())),
        }
    }
}

impl std::fmt::Display for AdapterMath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LowRank => "low-rank",
            Self::Merged => "merged",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AdapterMath;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for math in [AdapterMath::LowRank, AdapterMath::Merged] {
            assert_eq!(math.to_string().parse::<AdapterMath>().ok(), Some(math));
        }
        let err = "lowrank".parse::<AdapterMath>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`lowrank`") && err.contains("low-rank or merged"), "{err}");
    }
}
