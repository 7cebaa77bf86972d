//! The trained Punkt model `word_tokenize` splits English sentences with: nltk_data's
//! `tokenizers/punkt/PY3/english.pickle` (what nltk 3.5 loads) or the same parameters as
//! `tokenizers/punkt_tab/english/` (what later nltk loads). nltk_data gives the model no
//! licence, so lorabeam does not ship it: it reads the user's copy, found as nltk finds it
//! (`NLTK_DATA`, then `~/nltk_data` and the system folders), or named by `--punkt` /
//! `LORABEAM_PUNKT`. The pickle is read by [`super::pickle`], which executes nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::pickle::{Pickle, Value};

/// The environment variable naming the model: `english.pickle` or a `punkt_tab/english` folder.
pub const PUNKT_ENV: &str = "LORABEAM_PUNKT";

/// Why there is no Punkt model: never replaced by a guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PunktUnavailable(pub String);

/// Punkt's trained parameters (`PunktParameters`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PunktParams {
    pub abbrev_types: HashSet<String>,
    pub collocations: HashSet<(String, String)>,
    pub sent_starters: HashSet<String>,
    pub ortho_context: HashMap<String, u32>,
}

impl PunktParams {
    /// The orthographic context of a word type (0 when never seen, as the defaultdict gives).
    pub fn ortho(&self, typ: &str) -> u32 {
        self.ortho_context.get(typ).copied().unwrap_or(0)
    }

    /// Reads `path`: a pickled `PunktSentenceTokenizer` file, or a punkt_tab language folder.
    pub fn load(path: &Path) -> Result<Self, PunktUnavailable> {
        let fail = |why: String| PunktUnavailable(format!("cannot read the Punkt model {}: {why}", path.display()));
        if path.is_dir() {
            return Self::from_tab_dir(path).map_err(fail);
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        Self::from_pickle(&bytes).map_err(fail)
    }

    /// The model named by `explicit`, else by `LORABEAM_PUNKT`, else the first English model on
    /// nltk's search path.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, PunktUnavailable> {
        if let Some(path) = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os(PUNKT_ENV).map(PathBuf::from)) {
            return Self::load(&path);
        }
        let searched = nltk_data_dirs();
        for dir in &searched {
            for candidate in [dir.join("tokenizers/punkt/PY3/english.pickle"), dir.join("tokenizers/punkt_tab/english")]
            {
                if candidate.exists() {
                    return Self::load(&candidate);
                }
            }
        }
        Err(PunktUnavailable(format!(
            "nltk's English Punkt model (tokenizers/punkt/PY3/english.pickle or tokenizers/punkt_tab/english) is in none \
             of {}; give --punkt or set {PUNKT_ENV} (python -m nltk.downloader punkt fetches it)",
            searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )))
    }

    /// punkt_tab's files: `abbrev_types.txt`, `collocations.tab`, `sent_starters.txt`,
    /// `ortho_context.tab`, one entry a line (fields tab-separated), each line stripped.
    pub fn from_tab_dir(dir: &Path) -> Result<Self, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let lines = |text: String| -> Vec<String> {
            text.lines().map(|l| super::super::pystr::py_strip(l).to_string()).filter(|l| !l.is_empty()).collect()
        };
        let mut params = Self {
            abbrev_types: lines(read("abbrev_types.txt")?).into_iter().collect(),
            sent_starters: lines(read("sent_starters.txt")?).into_iter().collect(),
            ..Self::default()
        };
        for (n, line) in lines(read("collocations.tab")?).into_iter().enumerate() {
            let (a, b) = line.split_once('\t').ok_or_else(|| format!("collocations.tab:{}: no tab", n + 1))?;
            params.collocations.insert((a.to_string(), b.to_string()));
        }
        for (n, line) in lines(read("ortho_context.tab")?).into_iter().enumerate() {
            let bad = || format!("ortho_context.tab:{}: not `word<TAB>number`", n + 1);
            let (word, flags) = line.split_once('\t').ok_or_else(bad)?;
            params.ortho_context.insert(word.to_string(), flags.parse().map_err(|_| bad())?);
        }
        Ok(params)
    }

    /// A pickled `PunktSentenceTokenizer` (nltk_data's `PY3/*.pickle`): its `_params`.
    pub fn from_pickle(bytes: &[u8]) -> Result<Self, String> {
        let pickle = Pickle::read(bytes)?;
        let root = pickle.root();
        let params = pickle.state_field(root, "_params").ok_or("no `_params` in the tokenizer")?;
        let field = |name: &str| pickle.state_field(params, name).ok_or(format!("no `{name}` in its parameters"));
        let strings = |id| -> Result<HashSet<String>, String> {
            pickle
                .set_items(id)
                .iter()
                .map(|&v| pickle.string(v).map(str::to_string).ok_or("a non-string entry".into()))
                .collect()
        };
        let mut out = Self {
            abbrev_types: strings(field("abbrev_types")?)?,
            sent_starters: strings(field("sent_starters")?)?,
            ..Self::default()
        };
        for pair in pickle.set_items(field("collocations")?) {
            let Value::Tuple(items) = pickle.value(pair) else { return Err("a collocation that is not a pair".into()) };
            match items.as_slice() {
                [a, b] => {
                    let (Some(a), Some(b)) = (pickle.string(*a), pickle.string(*b)) else {
                        return Err("a collocation of non-strings".into());
                    };
                    out.collocations.insert((a.to_string(), b.to_string()));
                }
                _ => return Err("a collocation that is not a pair".into()),
            }
        }
        for (key, value) in pickle.dict_items(field("ortho_context")?) {
            let (Some(word), Some(flags)) = (pickle.string(key), pickle.int(value)) else {
                return Err("an orthographic context that is not word: number".into());
            };
            out.ortho_context.insert(word.to_string(), u32::try_from(flags).map_err(|_| "a negative flag set")?);
        }
        Ok(out)
    }
}

/// nltk's `nltk.data.path` on Linux: `NLTK_DATA` (colon-separated), `~/nltk_data`, then the
/// system folders (the interpreter-prefix ones left out: there is no interpreter here).
fn nltk_data_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("NLTK_DATA").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join("nltk_data"));
    }
    for system in
        ["/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]
    {
        dirs.push(PathBuf::from(system));
    }
    dirs
}
