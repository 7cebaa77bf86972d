//! Which data set a job is scored as: gpt2_decode.py's `--ref_type` (e2e, webnlg, dart), which
//! decides the reference files it writes, and with them the scorer that reads them
//! (e2e-metrics' `measure_scores.py` for E2E, WebNLG/GenerationEval's `eval.py` for the
//! other two).

use super::postprocess::PostProcess;

/// gpt2_decode.py's `--ref_type`, and the scoring that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreTask {
    /// One reference file, each context's references then a blank line; measure_scores.py.
    #[default]
    E2e,
    /// WebNLG (challenge 2017): `--ref_num` files of one reference per context; eval.py.
    Webnlg,
    /// DART: the same files and scorer as WebNLG.
    Dart,
}

/// The `--ref_num` microsoft/LoRA's README passes for WebNLG and DART (and eval.py's `-nr`).
pub const README_REF_NUM: usize = 6;

impl ScoreTask {
    pub const ALL: [Self; 3] = [Self::E2e, Self::Webnlg, Self::Dart];

    pub fn name(self) -> &'static str {
        match self {
            Self::E2e => "e2e",
            Self::Webnlg => "webnlg",
            Self::Dart => "dart",
        }
    }

    /// How the data set is written in prose.
    pub fn title(self) -> &'static str {
        match self {
            Self::E2e => "E2E",
            Self::Webnlg => "WebNLG",
            Self::Dart => "DART",
        }
    }

    /// Whether the references go into `--ref_num` files, one reference per context each
    /// (`webnlg`, `dart`), rather than E2E's one grouped file.
    pub fn multi_reference_files(self) -> bool {
        !matches!(self, Self::E2e)
    }

    /// The post-processing microsoft/LoRA's README asks gpt2_decode.py for: none for E2E,
    /// `--tokenize --lower` for WebNLG and DART.
    pub fn readme_post_process(self) -> PostProcess {
        match self {
            Self::E2e => PostProcess::default(),
            Self::Webnlg | Self::Dart => PostProcess { tokenize: true, lower: true },
        }
    }
}

impl std::str::FromStr for ScoreTask {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|task| task.name() == s)
            .ok_or_else(|| format!("unknown task `{s}` (e2e, webnlg or dart)"))
    }
}

impl std::fmt::Display for ScoreTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
