//! PEFT's ways of naming modules in `adapter_config.json`: a target list or regex, and the
//! `rank_pattern` / `alpha_pattern` maps, kept in file order because the first matching key wins.

use regex::Regex;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// `target_modules` or `exclude_modules`: a list of names, or one regex over whole names.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Targets {
    List(Vec<String>),
    Regex(String),
}

impl Targets {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::List(list) => list.len(),
            Self::Regex(_) => 1,
        }
    }

    pub(super) fn compile(&self) -> Result<Option<Regex>, String> {
        match self {
            Self::List(_) => Ok(None),
            Self::Regex(pattern) => full_match(pattern).map(Some),
        }
    }

    /// Which entry matches module `key` as peft matches it (`key == name` or ends in `.name`
    /// for a list; `re.fullmatch` for a string); `regex` is `compile`'s result.
    pub(super) fn matches(&self, key: &str, regex: Option<&Regex>) -> Option<usize> {
        match self {
            Self::List(list) => list.iter().position(|name| key == name || key.ends_with(&format!(".{name}"))),
            Self::Regex(_) => regex.filter(|r| r.is_match(key)).map(|_| 0),
        }
    }
}

/// Compiles a pattern anchored as Python's `re.fullmatch`.
fn full_match(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("`{pattern}` is not a regex lorabeam reads: {e}"))
}

/// A JSON object as its entries in file order.
pub(super) struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Copy> Ordered<T> {
    /// The value of the first key (a regex) such that `(.*\.)?(KEY)$` matches `key` from its
    /// start, as peft's `get_pattern_key`.
    pub(super) fn first_match(&self, key: &str) -> Result<Option<T>, String> {
        for (pattern, value) in &self.0 {
            let regex = Regex::new(&format!(r"^(?:.*\.)?(?:{pattern})$"))
                .map_err(|e| format!("`{pattern}` is not a regex lorabeam reads: {e}"))?;
            if regex.is_match(key) {
                return Ok(Some(*value));
            }
        }
        Ok(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object (or null)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Ordered<T>, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, T>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
            fn visit_unit<E>(self) -> Result<Ordered<T>, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<Ordered<T>, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        deserializer.deserialize_any(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_peft_matches_them() {
        let targets = Targets::List(vec!["c_attn".into(), "mlp.c_proj".into()]);
        assert_eq!(targets.matches("transformer.h.0.attn.c_attn", None), Some(0));
        assert_eq!(targets.matches("transformer.h.0.mlp.c_proj", None), Some(1));
        assert_eq!(targets.matches("transformer.h.0.attn.c_proj", None), None);
        let regex = Targets::Regex(r".*\.1\.attn\.c_attn".into());
        let compiled = regex.compile().expect("regex");
        assert_eq!(regex.matches("transformer.h.1.attn.c_attn", compiled.as_ref()), Some(0));
        assert_eq!(regex.matches("transformer.h.11.attn.c_attn", compiled.as_ref()), None);
        let ranks: Ordered<i64> = serde_json::from_str(r#"{"h.1.mlp.c_fc": 2, "c_fc": 3}"#).expect("json");
        assert_eq!(ranks.first_match("transformer.h.1.mlp.c_fc"), Ok(Some(2)));
        assert_eq!(ranks.first_match("transformer.h.0.mlp.c_fc"), Ok(Some(3)));
        assert_eq!(ranks.first_match("transformer.h.11.mlp.c_fc"), Ok(Some(3)));
        assert_eq!(ranks.first_match("transformer.h.0.attn.c_attn"), Ok(None));
    }
}
