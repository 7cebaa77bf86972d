//! PEFT `adapter_config.json` files as a list of fields, each a key peft reads with values
//! that stress it: numbers at the ends of f64 and i64 (and beyond, as text), regex-like
//! `rank_pattern` / `alpha_pattern` keys and `target_modules` strings, deep arrays, huge
//! strings, duplicate keys, and raw text that breaks the JSON.

use lorabeam_worker::model::adapter::UNSUPPORTED_OPTIONS;

use crate::tape::{seed, Blob};
use crate::{scaled, tape_enum, tape_struct};

/// Numbers as text, for what serde_json parses but f64/i64 do not hold exactly (or at all).
const NUMBERS: &[&str] = &[
    "1e308",
    "-1e308",
    "1e309",
    "5e-324",
    "1e-320",
    "-0",
    "0",
    "0.0",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "NaN",
    "Infinity",
    "8",
    "16.0",
    "-8",
    "1e3",
];

/// Pieces of module names and of regexes.
const TOKENS: &[&str] = &[
    "c_attn",
    "c_proj",
    "c_fc",
    "attn",
    "mlp",
    "transformer",
    "h",
    ".",
    "\\.",
    "*",
    ".*",
    "(",
    ")",
    "[",
    "]",
    "[0-9]+",
    "|",
    "^",
    "$",
    "{",
    "}",
    "?",
    "+",
    "\\",
    "(?i)",
    "(a*)*",
    "transformer.h.",
    "lm_head",
    "wte",
    "ln_f",
    "\\d",
    "\\p{L}",
    "(?P<x>",
    "{1000}",
    "{1000,}",
];

/// Options peft has that lorabeam refuses unless absent, null, false or empty (the worker's
/// list), and two it accepts with any value.
fn option_name(which: u8) -> &'static str {
    const ACCEPTED: [&str; 2] = ["fan_in_fan_out", "init_lora_weights"];
    let names = UNSUPPORTED_OPTIONS.len() + ACCEPTED.len();
    match usize::from(which) % names {
        i if i < UNSUPPORTED_OPTIONS.len() => UNSUPPORTED_OPTIONS[i],
        i => ACCEPTED[i - UNSUPPORTED_OPTIONS.len()],
    }
}

tape_enum! {
    pub enum Part {
        Token { which: u8 },
        Text { s: Blob },
        /// A decimal number (a layer index).
        Number { n: u16 },
        /// A counted repetition, `{n}`.
        Times { n: u32 },
    }
}

tape_struct! {
    /// A string built from parts: a module name, a pattern key, a regex.
    pub struct Pattern {
        pub parts: Vec<Part>,
    }
}

tape_enum! {
    pub enum Json {
        Null,
        Bool { v: bool },
        Str { s: Pattern },
        Int { v: i64 },
        Float { v: f64 },
        List { items: Vec<Pattern> },
        Object,
    }
}

tape_enum! {
    pub enum Num {
        Int { v: i64 },
        Float { v: f64 },
        Text { which: u8 },
        Other { v: Json },
    }
}

tape_enum! {
    pub enum Targets {
        List { items: Vec<Pattern> },
        Regex { p: Pattern },
        Other { v: Json },
    }
}

tape_enum! {
    pub enum Field {
        PeftType { v: Json },
        R { v: Num },
        LoraAlpha { v: Num },
        UseRslora { v: Json },
        Bias { v: Json },
        RankPattern { entries: Vec<(Pattern, Num)> },
        AlphaPattern { entries: Vec<(Pattern, Num)> },
        TargetModules { v: Targets },
        ExcludeModules { v: Targets },
        Unsupported { which: u8, v: Json },
        Other { name: Pattern, v: Json },
        /// `scaled(depth, 100_000)` nested arrays (or objects).
        Deep { name: Pattern, depth: u32, objects: bool },
        /// A string of `scaled(len, 16 MiB)` copies of one letter.
        Huge { name: Pattern, len: u32, letter: u8 },
        /// Raw text in place of a `"key": value` member.
        Raw { text: Blob },
    }
}

tape_struct! {
    pub struct PeftIn {
        /// The base model's layer count: `n_layer % 48 + 1`.
        pub n_layer: u8,
        pub fields: Vec<Field>,
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

impl Pattern {
    pub fn text(&self) -> String {
        let mut s = String::new();
        for part in &self.parts {
            match part {
                Part::Token { which } => s.push_str(TOKENS[usize::from(*which) % TOKENS.len()]),
                Part::Text { s: t } => s.push_str(&String::from_utf8_lossy(&t.0)),
                Part::Number { n } => s.push_str(&n.to_string()),
                Part::Times { n } => s.push_str(&format!("{{{n}}}")),
            }
        }
        s
    }
    fn of(text: &str) -> Self {
        Pattern { parts: vec![Part::Text { s: Blob::text(text) }] }
    }
}

fn float(v: f64) -> String {
    // JSON has no infinities or NaN: those become numbers that overflow, or invalid text.
    if v.is_finite() {
        format!("{v:e}")
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{}1e999", if v < 0.0 { "-" } else { "" })
    }
}

impl Json {
    fn text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool { v } => v.to_string(),
            Json::Str { s } => quote(&s.text()),
            Json::Int { v } => v.to_string(),
            Json::Float { v } => float(*v),
            Json::List { items } => {
                format!("[{}]", items.iter().map(|p| quote(&p.text())).collect::<Vec<_>>().join(","))
            }
            Json::Object => "{}".into(),
        }
    }
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Int { v } => v.to_string(),
            Num::Float { v } => float(*v),
            Num::Text { which } => NUMBERS[usize::from(*which) % NUMBERS.len()].into(),
            Num::Other { v } => v.text(),
        }
    }
}

impl Targets {
    fn text(&self) -> String {
        match self {
            Targets::List { items } => Json::List { items: items.clone() }.text(),
            Targets::Regex { p } => quote(&p.text()),
            Targets::Other { v } => v.text(),
        }
    }
}

fn map(entries: &[(Pattern, Num)]) -> String {
    let members: Vec<String> = entries.iter().map(|(k, v)| format!("{}:{}", quote(&k.text()), v.text())).collect();
    format!("{{{}}}", members.join(","))
}

impl Field {
    fn text(&self) -> String {
        let member = |key: &str, value: String| format!("{}:{value}", quote(key));
        match self {
            Field::PeftType { v } => member("peft_type", v.text()),
            Field::R { v } => member("r", v.text()),
            Field::LoraAlpha { v } => member("lora_alpha", v.text()),
            Field::UseRslora { v } => member("use_rslora", v.text()),
            Field::Bias { v } => member("bias", v.text()),
            Field::RankPattern { entries } => member("rank_pattern", map(entries)),
            Field::AlphaPattern { entries } => member("alpha_pattern", map(entries)),
            Field::TargetModules { v } => member("target_modules", v.text()),
            Field::ExcludeModules { v } => member("exclude_modules", v.text()),
            Field::Unsupported { which, v } => member(option_name(*which), v.text()),
            Field::Other { name, v } => member(&name.text(), v.text()),
            Field::Deep { name, depth, objects } => {
                let depth = scaled(*depth, 100_000) as usize;
                let (open, close) = if *objects { ("{\"a\":", "}") } else { ("[", "]") };
                let inner = if *objects { "0" } else { "" };
                member(&name.text(), format!("{}{inner}{}", open.repeat(depth), close.repeat(depth)))
            }
            Field::Huge { name, len, letter } => {
                let letter = char::from(b'a' + letter % 26);
                member(&name.text(), format!("\"{}\"", String::from(letter).repeat(scaled(*len, 16 << 20) as usize)))
            }
            Field::Raw { text } => String::from_utf8_lossy(&text.0).into_owned(),
        }
    }
}

impl PeftIn {
    /// The adapter_config.json text.
    pub fn json(&self) -> String {
        format!("{{{}}}", self.fields.iter().map(Field::text).collect::<Vec<_>>().join(","))
    }

    /// GPT-2 small's shape with the input's layer count.
    pub fn n_layer(&self) -> usize {
        usize::from(self.n_layer % 48) + 1
    }
}

/// Seeds: the config peft writes for a LoRA on `c_attn`, and one with rank and alpha patterns
/// and a regex for `target_modules`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let text = |s: &str| Json::Str { s: Pattern::of(s) };
    let plain = PeftIn {
        n_layer: 11,
        fields: vec![
            Field::PeftType { v: text("LORA") },
            Field::R { v: Num::Int { v: 8 } },
            Field::LoraAlpha { v: Num::Float { v: 16.0 } },
            Field::TargetModules { v: Targets::List { items: vec![Pattern::of("c_attn")] } },
            Field::Bias { v: text("none") },
            Field::Unsupported { which: 0, v: Json::Bool { v: false } },
            Field::RankPattern { entries: vec![] },
            Field::AlphaPattern { entries: vec![] },
        ],
    };
    let patterns = PeftIn {
        n_layer: 11,
        fields: vec![
            Field::PeftType { v: text("LORA") },
            Field::R { v: Num::Int { v: 4 } },
            Field::LoraAlpha { v: Num::Int { v: 32 } },
            Field::TargetModules { v: Targets::Regex { p: Pattern::of(r".*\.h\.[0-9]+\.(attn\.c_attn|mlp\.c_fc)") } },
            Field::RankPattern { entries: vec![(Pattern::of("h.0.attn.c_attn"), Num::Int { v: 2 })] },
            Field::AlphaPattern { entries: vec![(Pattern::of("c_fc"), Num::Float { v: 8.0 })] },
            Field::UseRslora { v: Json::Bool { v: true } },
        ],
    };
    vec![("plain", seed(&plain)), ("patterns", seed(&patterns))]
}
