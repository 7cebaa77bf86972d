//! `lorabeam run --adapter`: the adapters one run decodes on a shared base (the embedded
//! sweep), where each one's output goes, and the table comparing them.

use std::path::{Path, PathBuf};

use super::task_table::{paper_columns, paper_headers};
use anyhow::Context;
use lorabeam_core::eval::E2eScores;
use lorabeam_worker::model::{Adapter, AdapterWeights, Gpt2};

use super::aligned::{aligned_lines, Align};

/// `--adapter PATH` or `--adapter NAME=PATH`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    pub name: String,
    pub path: PathBuf,
}

/// The name `--include_base` decodes the bare base under.
pub const BASE_NAME: &str = "base";

impl std::str::FromStr for AdapterSpec {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, String> {
        // A URL may hold `=` in its key: only a name before it is split off.
        let named = value.split_once('=').filter(|(name, _)| !lorabeam_storage::is_url(value) || !name.contains("://"));
        let (name, path) = match named {
            Some((name, path)) => (name.to_string(), PathBuf::from(path)),
            None if lorabeam_storage::is_url(value) => (url_name(value), PathBuf::from(value)),
            None => {
                let path = PathBuf::from(value);
                let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
                let name = stem.and_then(|s| s.to_str()).unwrap_or_default().to_string();
                (name, path)
            }
        };
        if path.as_os_str().is_empty() {
            return Err(format!("`{value}`: no path (expected PATH or NAME=PATH)"));
        }
        let valid = !name.is_empty()
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(format!(
                "`{value}`: adapter name `{name}` must be letters, digits, `.`, `_` or `-` (it names a folder of \
                 work_dir); give one as NAME=PATH"
            ));
        }
        Ok(Self { name, path })
    }
}

/// An adapter URL's default name: its last part, without `.pt` (`s3://b/a/x.pt`: `x`,
/// `s3://b/peft/`: `peft`).
fn url_name(url: &str) -> String {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    last.strip_suffix(".pt").unwrap_or(last).to_string()
}

/// One thing a run decodes: an adapter (or the bare base, or the model as loaded) and the
/// folder its output goes to.
pub struct Variant {
    pub name: String,
    pub adapter: Option<AdapterWeights>,
    pub dir: PathBuf,
}

/// What one variant decoded, for the table.
pub struct VariantSummary {
    pub name: String,
    pub lines: usize,
    /// Its share of the decoding time, by the tokens it generated (variants share the batch).
    pub seconds: f64,
    pub generated_tokens: usize,
    pub scores: Option<VariantScores>,
}

/// A variant's scores: E2E's five, or a WebNLG or DART report (its JSON).
pub enum VariantScores {
    E2e(E2eScores),
    Task(serde_json::Value),
}

/// Refuses flag combinations `--adapter` cannot mean anything with, before the model loads.
pub fn check_flags(
    adapters: &[AdapterSpec],
    include_base: bool,
    init: Option<&Path>,
    base: Option<&Path>,
    lora_dim: Option<usize>,
) -> anyhow::Result<()> {
    if adapters.is_empty() {
        anyhow::ensure!(!include_base, "--include_base decodes the bare base beside the adapters: give --adapter too");
        return Ok(());
    }
    anyhow::ensure!(
        init.is_none(),
        "--adapter decodes on --base_checkpoint; --init_checkpoint (a model with its LoRA merged at load) cannot \
         take adapters too"
    );
    anyhow::ensure!(base.is_some(), "--adapter needs --base_checkpoint, the base model the adapters were trained on");
    anyhow::ensure!(
        lora_dim.is_none_or(|r| r == 0),
        "--lora_dim does not apply to --adapter: an adapter's rank comes from its tensors (--lora_alpha is a loralib \
         .pt adapter's alpha)"
    );
    let mut names: Vec<&str> = adapters.iter().map(|a| a.name.as_str()).collect();
    if include_base {
        names.push(BASE_NAME);
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!("adapter name `{}` is given twice; name them apart with --adapter NAME=PATH", pair[0]);
    }
    Ok(())
}

/// The run's variants: without adapters the model itself, writing into `work_dir`; with
/// them each adapter (then the base, with `include_base`), writing into `work_dir/NAME`.
pub fn variants(
    model: &Gpt2,
    adapters: &[AdapterSpec],
    include_base: bool,
    loralib_alpha: f64,
    work_dir: &Path,
) -> anyhow::Result<Vec<Variant>> {
    if adapters.is_empty() {
        return Ok(vec![Variant { name: String::new(), adapter: None, dir: work_dir.to_path_buf() }]);
    }
    let mut variants = Vec::with_capacity(adapters.len() + 1);
    for spec in adapters {
        let adapter = Adapter::load(&spec.path, model.config(), loralib_alpha)
            .with_context(|| format!("loading adapter `{}`", spec.name))?;
        let prepared = AdapterWeights::prepare(model, &adapter, &spec.name)
            .with_context(|| format!("merging adapter `{}`", spec.name))?;
        tracing::info!(adapter = %spec.name, path = %spec.path.display(), matrices = adapter.matrices.len(),
            mib = prepared.bytes() as f64 / (1 << 20) as f64, "adapter loaded");
        variants.push(Variant { name: spec.name.clone(), adapter: Some(prepared), dir: work_dir.join(&spec.name) });
    }
    if include_base {
        variants.push(Variant { name: BASE_NAME.into(), adapter: None, dir: work_dir.join(BASE_NAME) });
    }
    Ok(variants)
}

/// One row per variant: lines, generated tokens, its share of the decoding seconds, and the
/// scores when the run scored (E2E's five, or the task's paper columns).
pub fn print_table(rows: &[VariantSummary]) {
    for line in table_lines(rows) {
        crate::outln!("{line}");
    }
}

/// [`print_table`]'s lines: names escaped for the terminal, numbers aligned right.
fn table_lines(rows: &[VariantSummary]) -> Vec<String> {
    let reports: Vec<Option<&serde_json::Value>> = rows
        .iter()
        .map(|r| match &r.scores {
            Some(VariantScores::Task(json)) => Some(json),
            _ => None,
        })
        .collect();
    let mut header: Vec<String> = ["adapter", "lines", "tokens", "seconds"].map(String::from).to_vec();
    if rows.iter().any(|r| matches!(r.scores, Some(VariantScores::E2e(_)))) {
        header.extend(["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"].map(String::from));
    }
    header.extend(paper_headers(&reports));
    let cells: Vec<Vec<String>> = rows.iter().map(row_cells).collect();
    aligned_lines(&header, &cells, |i| if i == 0 { Align::Left } else { Align::Right })
}

/// One variant's cells of [`table_lines`].
fn row_cells(row: &VariantSummary) -> Vec<String> {
    let name = lorabeam_core::quote::escape_controls(&row.name, false).into_owned();
    let mut cells = vec![name, row.lines.to_string(), row.generated_tokens.to_string(), format!("{:.2}", row.seconds)];
    match &row.scores {
        Some(VariantScores::E2e(s)) => {
            let meteor = s.meteor.as_ref().map_or_else(|_| "-".to_string(), |m| format!("{m:.4}"));
            cells.extend([
                format!("{:.4}", s.bleu),
                format!("{:.4}", s.nist),
                meteor,
                format!("{:.4}", s.rouge_l),
                format!("{:.4}", s.cider),
            ]);
        }
        Some(VariantScores::Task(json)) => cells.extend(paper_columns(json).into_iter().map(|(_, cell)| cell)),
        None => {}
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_specs_parse_with_and_without_a_name() {
        let named: AdapterSpec = "a=/x/y.pt".parse().expect("named");
        assert_eq!(named, AdapterSpec { name: "a".into(), path: "/x/y.pt".into() });
        let bare: AdapterSpec = "/x/model.2000.pt".parse().expect("bare");
        assert_eq!(bare.name, "model.2000");
        assert!("bad/name=/x".parse::<AdapterSpec>().is_err());
        assert!("a=".parse::<AdapterSpec>().is_err());
        let url: AdapterSpec = "s3://b/adapters/model.2000.pt".parse().expect("url");
        assert_eq!(url, AdapterSpec { name: "model.2000".into(), path: "s3://b/adapters/model.2000.pt".into() });
        let folder: AdapterSpec = "gs://b/adapters/peft_a/".parse().expect("folder url");
        assert_eq!(folder.name, "peft_a");
        let named: AdapterSpec = "x=s3://b/k=v/y".parse().expect("named url");
        assert_eq!(named, AdapterSpec { name: "x".into(), path: "s3://b/k=v/y".into() });
        let keyed: AdapterSpec = "s3://b/k=v/y.pt".parse().expect("url with =");
        assert_eq!(keyed, AdapterSpec { name: "y".into(), path: "s3://b/k=v/y.pt".into() });
    }

    #[test]
    fn duplicate_names_and_lone_flags_are_refused() {
        let a: AdapterSpec = "a=/x".parse().expect("spec");
        let base = Some(Path::new("/b"));
        let twice = check_flags(&[a.clone(), a.clone()], false, None, base, None).expect_err("twice");
        assert!(twice.to_string().contains("`a` is given twice"), "{twice}");
        let b: AdapterSpec = "base=/y".parse().expect("spec");
        assert!(check_flags(&[b], true, None, base, None).is_err());
        assert!(check_flags(&[], true, None, base, None).is_err());
        assert!(check_flags(std::slice::from_ref(&a), false, None, None, None).is_err());
        assert!(check_flags(std::slice::from_ref(&a), false, None, base, Some(4)).is_err());
        assert!(check_flags(&[a], false, None, base, None).is_ok());
    }
}
