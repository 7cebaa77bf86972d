//! An HF PEFT adapter's `adapter_config.json`, parsed and checked on its own bytes: what it
//! targets with peft 0.21's matching rules, and each adapted module's rank and scaling within
//! the bounds of `sanity`. `target_modules` as a list matches a module named exactly so or
//! ending in `.name`, as a string it is a regex that must match the whole module name;
//! `rank_pattern` / `alpha_pattern` keys match the end of a name after a dot (`(.*\.)?(KEY)$`),
//! the first key in file order winning; `exclude_modules` likewise. Module names are
//! GPT2LMHeadModel's (`transformer.h.3.mlp.c_fc`).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::matrix::AdaptedModule;
use super::sanity::{self, check_alpha, check_rank, MAX_CONFIG_BYTES, MAX_CONFIG_ENTRIES};
use super::targets::{Ordered, Targets};
use crate::model::{Gpt2Config, ModelError};

/// What lorabeam reads of `adapter_config.json`; other fields do not change inference.
#[derive(Deserialize)]
struct PeftConfig {
    peft_type: Option<String>,
    #[serde(default = "default_r")]
    r: i64,
    #[serde(default = "default_alpha")]
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    rank_pattern: Ordered<i64>,
    #[serde(default)]
    alpha_pattern: Ordered<f64>,
    target_modules: Option<Targets>,
    exclude_modules: Option<Targets>,
    bias: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

fn default_r() -> i64 {
    8
}
fn default_alpha() -> f64 {
    8.0
}

/// Options that change what the adapter computes and that lorabeam does not implement: each
/// must be absent, null, false or empty.
pub const UNSUPPORTED_OPTIONS: [&str; 8] = [
    "use_dora",
    "modules_to_save",
    "layers_to_transform",
    "lora_bias",
    "target_parameters",
    "layer_replication",
    "trainable_token_indices",
    "alora_invocation_tokens",
];

/// One module the adapter changes, with its rank and scaling.
pub(super) struct ModuleSetting {
    pub layer: usize,
    pub module: AdaptedModule,
    /// peft's name of the module (`transformer.h.3.mlp.c_fc`).
    pub key: String,
    pub r: i64,
    pub scaling: f64,
}

type FieldError<'a> = &'a dyn Fn(&str, String) -> ModelError;

/// Parses and checks an `adapter_config.json` held in memory (`path` names it in errors), for
/// a base of shape `config`: the whole of what loading it checks before any weight is read.
/// It never panics, and allocates in proportion to `bytes` (at most `MAX_CONFIG_BYTES`).
pub fn check_peft_config(bytes: &[u8], config: &Gpt2Config) -> Result<(), ModelError> {
    module_settings(bytes, Path::new("adapter_config.json"), config).map(|_| ())
}

/// The modules a config (`bytes`, read from `path`) adapts, in GPT-2's order, each checked.
pub(super) fn module_settings(
    bytes: &[u8],
    path: &Path,
    config: &Gpt2Config,
) -> Result<Vec<ModuleSetting>, ModelError> {
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ModelError::AdapterConfigTooLarge {
            path: path.into(),
            size: bytes.len() as u64,
            limit: MAX_CONFIG_BYTES,
        });
    }
    let field =
        |field: &str, detail: String| ModelError::AdapterField { path: path.into(), field: field.into(), detail };
    let peft: PeftConfig = serde_json::from_slice(bytes)
        .map_err(|e| ModelError::AdapterFormat { path: path.into(), detail: e.to_string() })?;
    check_supported(&peft, &field)?;
    check_entry_counts(&peft, &field)?;
    check_values(&peft, config, &field)?;
    let matched = matched_modules(&peft, config, &field)?;
    let keys: Vec<String> = matched.iter().map(|&(layer, module)| module_key(layer, module)).collect();
    let ranks = peft.rank_pattern.first_matches(&keys).map_err(|d| field("rank_pattern", d))?;
    let alphas = peft.alpha_pattern.first_matches(&keys).map_err(|d| field("alpha_pattern", d))?;
    let e = config.n_embd as i64;
    let mut settings = Vec::with_capacity(keys.len());
    for (((layer, module), key), (rank_at, alpha_at)) in
        matched.into_iter().zip(keys).zip(ranks.into_iter().zip(alphas))
    {
        let (r_field, r) = pattern_value(&peft.rank_pattern, "rank_pattern", rank_at).unwrap_or(("r".into(), peft.r));
        let (alpha_field, alpha) = pattern_value(&peft.alpha_pattern, "alpha_pattern", alpha_at)
            .unwrap_or(("lora_alpha".into(), peft.lora_alpha));
        let (n_in, n_out) = module.shape(e);
        check_rank(r, n_in.min(n_out)).map_err(|d| field(&r_field, format!("`{key}`: {d}")))?;
        let scaling =
            sanity::scaling(alpha, r, peft.use_rslora).map_err(|d| field(&alpha_field, format!("`{key}`: {d}")))?;
        settings.push(ModuleSetting { layer, module, key, r, scaling });
    }
    Ok(settings)
}

/// The field name and value of a pattern's entry `at`: `rank_pattern["h.0.mlp.c_fc"]`.
fn pattern_value<T: Copy>(pattern: &Ordered<T>, name: &str, at: Option<usize>) -> Option<(String, T)> {
    let (key, value) = pattern.0.get(at?)?;
    Some((format!("{name}[\"{key}\"]"), *value))
}

fn check_supported(peft: &PeftConfig, field: FieldError) -> Result<(), ModelError> {
    if let Some(kind) = peft.peft_type.as_deref().filter(|t| *t != "LORA") {
        return Err(field("peft_type", format!("`{kind}` is not a LoRA adapter (expected LORA)")));
    }
    if let Some(bias) = peft.bias.as_deref().filter(|b| *b != "none") {
        return Err(field("bias", format!("`{bias}` trains biases, which lorabeam does not apply (expected none)")));
    }
    for name in UNSUPPORTED_OPTIONS {
        let set = match peft.rest.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        };
        if set {
            let value = peft.rest.get(name).map(Value::to_string).unwrap_or_default();
            return Err(field(name, format!("is set ({value}), which lorabeam does not support")));
        }
    }
    Ok(())
}

/// Each list and pattern has at most `MAX_CONFIG_ENTRIES` entries.
fn check_entry_counts(peft: &PeftConfig, field: FieldError) -> Result<(), ModelError> {
    let count = |targets: &Option<Targets>| targets.as_ref().map_or(0, Targets::len);
    for (name, entries) in [
        ("target_modules", count(&peft.target_modules)),
        ("exclude_modules", count(&peft.exclude_modules)),
        ("rank_pattern", peft.rank_pattern.0.len()),
        ("alpha_pattern", peft.alpha_pattern.0.len()),
    ] {
        if entries > MAX_CONFIG_ENTRIES {
            return Err(field(
                name,
                format!("has {entries} entries, more than the {MAX_CONFIG_ENTRIES} lorabeam reads (GPT-2 has far fewer modules)"),
            ));
        }
    }
    Ok(())
}

/// `r`, `lora_alpha` and every pattern value, whether or not a module uses it: ranks from 1 to
/// `n_embd` (the smaller dimension of every matrix GPT-2 has), alphas finite and bounded.
fn check_values(peft: &PeftConfig, config: &Gpt2Config, field: FieldError) -> Result<(), ModelError> {
    let e = config.n_embd as i64;
    check_rank(peft.r, e).map_err(|d| field("r", d))?;
    check_alpha(peft.lora_alpha).map_err(|d| field("lora_alpha", d))?;
    for (key, r) in &peft.rank_pattern.0 {
        check_rank(*r, e).map_err(|d| field(&format!("rank_pattern[\"{key}\"]"), d))?;
    }
    for (key, alpha) in &peft.alpha_pattern.0 {
        check_alpha(*alpha).map_err(|d| field(&format!("alpha_pattern[\"{key}\"]"), d))?;
    }
    Ok(())
}

/// peft's name for a block module.
fn module_key(layer: usize, module: AdaptedModule) -> String {
    format!("transformer.h.{layer}.{}", module.name())
}

/// Every module name of a GPT2LMHeadModel with `layers` blocks, with what lorabeam can adapt.
fn gpt2_modules(layers: usize) -> Vec<(String, Option<(usize, AdaptedModule)>)> {
    let mut names: Vec<(String, Option<(usize, AdaptedModule)>)> =
        ["transformer", "transformer.wte", "transformer.wpe", "transformer.drop", "transformer.h"]
            .iter()
            .map(|n| (n.to_string(), None))
            .collect();
    for layer in 0..layers {
        let block = format!("transformer.h.{layer}");
        names.push((block.clone(), None));
        for part in ["ln_1", "attn", "attn.attn_dropout", "attn.resid_dropout", "ln_2", "mlp", "mlp.act", "mlp.dropout"]
        {
            names.push((format!("{block}.{part}"), None));
        }
        names.extend(AdaptedModule::ALL.iter().map(|&m| (module_key(layer, m), Some((layer, m)))));
    }
    names.extend(["transformer.ln_f", "lm_head"].iter().map(|n| (n.to_string(), None)));
    names
}

/// The modules the config targets, in peft's matching, refusing any lorabeam cannot adapt and
/// any listed target GPT-2 does not have.
fn matched_modules(
    peft: &PeftConfig,
    config: &Gpt2Config,
    field: FieldError,
) -> Result<Vec<(usize, AdaptedModule)>, ModelError> {
    // peft's default targets for GPT-2 when the config names none.
    let default = Targets::List(vec!["c_attn".into()]);
    let targets = peft.target_modules.as_ref().unwrap_or(&default);
    let target_regex = targets.compile().map_err(|d| field("target_modules", d))?;
    let exclude_regex = match &peft.exclude_modules {
        Some(ex) => ex.compile().map_err(|d| field("exclude_modules", d))?,
        None => None,
    };
    let mut matched = Vec::new();
    let mut used = vec![false; targets.len()];
    for (key, adaptable) in gpt2_modules(config.n_layer) {
        if let Some(exclude) = &peft.exclude_modules {
            if exclude.matches(&key, exclude_regex.as_ref()).is_some() {
                continue;
            }
        }
        let Some(which) = targets.matches(&key, target_regex.as_ref()) else { continue };
        if let Some(slot) = used.get_mut(which) {
            *slot = true;
        }
        match adaptable {
            Some(found) => matched.push(found),
            None => {
                return Err(field(
                    "target_modules",
                    format!(
                        "matches `{key}`, which lorabeam cannot adapt (only c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)"
                    ),
                ))
            }
        }
    }
    if let Targets::List(list) = targets {
        if let Some((name, _)) = list.iter().zip(&used).find(|(_, used)| !**used) {
            return Err(field("target_modules", format!("`{name}` is not a module of GPT-2")));
        }
    }
    if matched.is_empty() {
        return Err(field("target_modules", "matches no module of GPT-2".into()));
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2_small() -> Gpt2Config {
        Gpt2Config {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            layer_norm_epsilon: 1e-5,
        }
    }

    fn refusal(json: &str) -> String {
        match check_peft_config(json.as_bytes(), &gpt2_small()) {
            Ok(()) => panic!("{json} was accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_sane_config_passes_with_its_settings() {
        let json = r#"{"r": 8, "lora_alpha": 24, "use_rslora": true, "target_modules": ["c_attn", "mlp.c_fc"],
            "rank_pattern": {"h.0.mlp.c_fc": 4}, "alpha_pattern": {"c_fc": 12}}"#;
        let settings = module_settings(json.as_bytes(), Path::new("c.json"), &gpt2_small()).expect("sane");
        assert_eq!(settings.len(), 24);
        let fc0 = settings.iter().find(|s| s.key == "transformer.h.0.mlp.c_fc").expect("h.0 c_fc");
        assert_eq!((fc0.r, fc0.scaling), (4, 6.0));
        assert_eq!(settings[0].scaling, 24.0 / 8f64.sqrt());
    }

    #[test]
    fn out_of_bound_values_are_refused_naming_field_and_value() {
        for (json, field, value) in [
            (r#"{"lora_alpha": 1e300}"#, "`lora_alpha`", "1e300"),
            (r#"{"lora_alpha": -1e38}"#, "`lora_alpha`", "-1e38"),
            (r#"{"alpha_pattern": {"h.7.attn.c_attn": 2e9}}"#, r#"`alpha_pattern["h.7.attn.c_attn"]`"#, "2e9"),
            (r#"{"r": 0}"#, "`r`", "rank 0"),
            (r#"{"r": 769}"#, "`r`", "at most 768"),
            (r#"{"rank_pattern": {"nowhere": -2}}"#, r#"`rank_pattern["nowhere"]`"#, "rank -2"),
            (r#"{"r": 1, "lora_alpha": 5000}"#, "`lora_alpha`", "alpha/r = 5000/1 = 5000"),
            (r#"{"alpha_pattern": {"c_attn": 9000}}"#, r#"`alpha_pattern["c_attn"]`"#, "`transformer.h.0.attn.c_attn`"),
        ] {
            let err = refusal(json);
            assert!(err.contains(field) && err.contains(value) && err.contains("adapter_config.json"), "{json}: {err}");
        }
    }

    #[test]
    fn oversized_configs_and_lists_are_refused() {
        let long = format!(r#"{{"r": 8, "pad": "{}"}}"#, " ".repeat(MAX_CONFIG_BYTES as usize));
        assert!(refusal(&long).contains("more than the 1048576"));
        let many: Vec<String> = (0..=MAX_CONFIG_ENTRIES).map(|i| format!(r#""x{i}": 2"#)).collect();
        let err = refusal(&format!(r#"{{"rank_pattern": {{{}}}}}"#, many.join(",")));
        assert!(err.contains("`rank_pattern`: has 1025 entries"), "{err}");
    }

    /// Arbitrary and truncated bytes are refused, never a panic.
    #[test]
    fn mangled_configs_are_refused_not_panicked_on() {
        let good = br#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": "(.*c_attn)|(.*mlp.c_proj)",
            "rank_pattern": {"h.1.mlp.c_proj": 2}, "exclude_modules": ["h.3.attn.c_attn"]}"#;
        assert!(check_peft_config(good, &gpt2_small()).is_ok());
        for end in 0..good.len() {
            assert!(check_peft_config(&good[..end], &gpt2_small()).is_err(), "{end}");
        }
        for odd in [&b"\xff\xfe"[..], b"[]", b"null", br#"{"r": 1e400}"#, br#"{"target_modules": [1]}"#] {
            assert!(check_peft_config(odd, &gpt2_small()).is_err());
        }
    }
}
