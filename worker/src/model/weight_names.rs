//! Maps the tensor names of every supported checkpoint layout onto one canonical GPT-2 naming
//! (`wte.weight`, `h.0.attn.c_attn.weight`, ...), as the reference's `load_weight` does.

/// What a checkpoint key means to the loader.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// A transformer tensor under its canonical name.
    Tensor(String),
    /// Buffers and tied copies the model rebuilds itself (causal masks, `lm_head` = `wte`).
    Ignored,
}

/// Canonicalises one key: strips `module.transformer.`, `module.` or `transformer.`, and maps
/// TF-converted `.g` / `.b` / `.w` suffixes to `.weight` / `.bias` / `.weight`.
pub fn canonical_key(key: &str) -> KeyRole {
    let mut name = key;
    for prefix in ["module.", "transformer."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
        }
    }
    if name.starts_with("lm_head.") || name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
        return KeyRole::Ignored;
    }
    let name = if let Some(stem) = name.strip_suffix(".g").or_else(|| name.strip_suffix(".w")) {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".b") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    };
    KeyRole::Tensor(name)
}

pub fn is_lora(name: &str) -> bool {
    name.ends_with(".lora_A") || name.ends_with(".lora_B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(s: &str) -> KeyRole {
        KeyRole::Tensor(s.to_string())
    }

    #[test]
    fn every_layout_maps_to_the_same_name() {
        for key in [
            "module.transformer.h.0.attn.c_attn.weight",
            "transformer.h.0.attn.c_attn.weight",
            "module.h.0.attn.c_attn.weight",
            "h.0.attn.c_attn.weight",
            "h.0.attn.c_attn.w",
        ] {
            assert_eq!(canonical_key(key), tensor("h.0.attn.c_attn.weight"), "{key}");
        }
        assert_eq!(canonical_key("ln_f.b"), tensor("ln_f.bias"));
        assert_eq!(canonical_key("h.3.ln_1.g"), tensor("h.3.ln_1.weight"));
        assert_eq!(canonical_key("module.transformer.h.1.attn.c_attn.lora_A"), tensor("h.1.attn.c_attn.lora_A"));
    }

    #[test]
    fn buffers_and_tied_head_are_ignored() {
        for key in ["h.0.attn.bias", "h.0.attn.masked_bias", "module.lm_head.decoder.weight"] {
            assert_eq!(canonical_key(key), KeyRole::Ignored, "{key}");
        }
        // `c_attn.bias` is a parameter, not the causal-mask buffer.
        assert_eq!(canonical_key("h.0.attn.c_attn.bias"), tensor("h.0.attn.c_attn.bias"));
    }
}
