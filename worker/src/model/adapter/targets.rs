//! PEFT's ways of naming modules in `adapter_config.json`: a target list or regex, and the
//! `rank_pattern` / `alpha_pattern` maps, kept in file order because the first matching key wins.

use regex::{Regex, RegexBuilder};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::sanity::MAX_REGEX_BYTES;

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
            Self::List(list) => list.iter().position(|name| {
                key.strip_suffix(name.as_str()).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
            }),
            Self::Regex(_) => regex.filter(|r| r.is_match(key)).map(|_| 0),
        }
    }
}

/// Compiles a pattern anchored as Python's `re.fullmatch`.
fn full_match(pattern: &str) -> Result<Regex, String> {
    bounded(pattern, &format!("^(?:{pattern})$"))
}

/// Compiles `anchored` (made of a config's `pattern`) within `MAX_REGEX_BYTES`.
fn bounded(pattern: &str, anchored: &str) -> Result<Regex, String> {
    RegexBuilder::new(anchored)
        .size_limit(MAX_REGEX_BYTES)
        .dfa_size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| format!("`{pattern}` is not a regex lorabeam reads: {e}"))
}

/// A JSON object as its entries in file order.
pub(super) struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Ordered<T> {
    /// For each of `keys`, the index of the first entry whose key (a regex) matches it as
    /// peft's `get_pattern_key` does: `(.*\.)?(KEY)$` from the name's start. Every pattern is
    /// compiled (a bad one is refused whatever it would match), once, one at a time.
    pub(super) fn first_matches(&self, keys: &[String]) -> Result<Vec<Option<usize>>, String> {
        let mut found = vec![None; keys.len()];
        for (index, (pattern, _)) in self.0.iter().enumerate() {
            let regex = bounded(pattern, &format!(r"^(?:.*\.)?(?:{pattern})$"))?;
            for (slot, key) in found.iter_mut().zip(keys) {
                if slot.is_none() && regex.is_match(key) {
                    *slot = Some(index);
                }
            }
        }
        Ok(found)
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
        let keys = ["transformer.h.1.mlp.c_fc", "transformer.h.0.mlp.c_fc", "transformer.h.11.mlp.c_fc"]
            .into_iter()
            .chain(["transformer.h.0.attn.c_attn"])
            .map(String::from)
            .collect::<Vec<_>>();
        assert_eq!(ranks.first_matches(&keys), Ok(vec![Some(0), Some(1), Some(1), None]));
    }

    #[test]
    fn a_regex_bomb_is_refused_not_compiled() {
        let bomb = Targets::Regex("((a{100}){100}){100}".into());
        assert!(bomb.compile().err().unwrap_or_default().contains("is not a regex lorabeam reads"));
        let ranks: Ordered<i64> = serde_json::from_str(r#"{"(x{1000}){1000}": 2}"#).expect("json");
        assert!(ranks.first_matches(&["h.0.mlp.c_fc".into()]).is_err());
    }
}
