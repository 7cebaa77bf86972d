//! The leaf types of an adapter: which matrix of a block it changes, its low-rank updates in
//! GPT-2's Conv1D layout (`W (in, out) += s (B A)^T`), and the check every loaded factor passes.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::model::ModelError;

/// The four Conv1D matrices of a GPT-2 block an adapter may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdaptedModule {
    /// `attn.c_attn`, the fused q/k/v projection.
    CAttn,
    /// `attn.c_proj`.
    AttnProj,
    /// `mlp.c_fc`.
    CFc,
    /// `mlp.c_proj`.
    MlpProj,
}

impl AdaptedModule {
    /// Every module, in `index` order.
    pub const ALL: [AdaptedModule; Self::COUNT] = [Self::CAttn, Self::AttnProj, Self::CFc, Self::MlpProj];

    /// How many modules there are: the length of a per-module table.
    pub const COUNT: usize = 4;

    /// The module's place in `ALL` and in per-module tables: `0..COUNT`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The module's name under a block, as GPT-2's `state_dict` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::CAttn => "attn.c_attn",
            Self::AttnProj => "attn.c_proj",
            Self::CFc => "mlp.c_fc",
            Self::MlpProj => "mlp.c_proj",
        }
    }

    /// `(in, out)` of the Conv1D weight.
    pub fn shape(self, n_embd: i64) -> (i64, i64) {
        match self {
            Self::CAttn => (n_embd, 3 * n_embd),
            Self::AttnProj => (n_embd, n_embd),
            Self::CFc => (n_embd, 4 * n_embd),
            Self::MlpProj => (4 * n_embd, n_embd),
        }
    }
}

/// One low-rank update of a block of output columns: `W[:, column..column + out] += s (B A)^T`,
/// `a (r, in)`, `b (out, r)`, in f64 on the CPU. loralib's `MergedLinear` gives `c_attn` two
/// parts (q at column 0, v at column `2 n_embd`), each merged alone as loralib does; PEFT gives
/// one part over all columns.
pub struct LowRank {
    pub column: i64,
    pub a: Tensor,
    pub b: Tensor,
}

/// One adapted matrix: which block and module, its scaling and its updates.
pub struct AdaptedMatrix {
    pub layer: usize,
    pub module: AdaptedModule,
    pub scaling: f64,
    pub parts: Vec<LowRank>,
}

/// Checks a factor's dtype, shape and values and returns it in f64 on the CPU.
pub(super) fn checked_factor(tensor: Tensor, name: &str, path: &Path, expected: &[i64]) -> Result<Tensor, ModelError> {
    if !matches!(tensor.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
        return Err(ModelError::WrongDtype {
            name: name.into(),
            path: path.into(),
            found: format!("{:?}", tensor.kind()),
        });
    }
    if tensor.size() != expected {
        return Err(ModelError::ShapeMismatch {
            name: name.into(),
            path: path.into(),
            expected: expected.to_vec(),
            found: tensor.size(),
        });
    }
    let tensor = tensor.f_to_kind(Kind::Double)?;
    if !bool::try_from(tensor.f_isfinite()?.f_all()?)? {
        return Err(ModelError::NonFinite { name: name.into(), path: path.into() });
    }
    Ok(tensor)
}

#[cfg(test)]
mod tests {
    use super::AdaptedModule;

    #[test]
    fn each_module_indexes_its_place_in_all() {
        for (i, module) in AdaptedModule::ALL.into_iter().enumerate() {
            assert_eq!(module.index(), i, "{module:?}");
        }
    }
}
