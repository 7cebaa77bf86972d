//! nltk 3.5's `NLTKWordTokenizer` (the "improved Treebank" tokenizer `word_tokenize` runs on
//! each sentence): its substitutions in its order (starting quotes, punctuation, brackets,
//! double dashes, ending quotes, contractions), then a whitespace split. The rules are
//! re-stated here from their behaviour with Python's `re` meanings made explicit: `\s` is
//! `str.isspace()`, `\w` is letters, numbers and `_`, `\b` the edge of such a run, `$` the end
//! or just before a final newline.

use std::sync::OnceLock;

use fancy_regex::Regex;

use super::super::pystr::py_split;

/// Python's `\s` (str patterns): `str.isspace()`.
const S: &str = r"[\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]";
/// Python's `\S`.
const NS: &str = r"[^\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]";
/// Python's `\w` (str patterns).
const W: &str = r"[\p{L}\p{N}_]";
/// Python's `\b`.
const B: &str = r"(?:(?<=[\p{L}\p{N}_])(?![\p{L}\p{N}_])|(?<![\p{L}\p{N}_])(?=[\p{L}\p{N}_]))";
/// Python's `$` without MULTILINE.
const END: &str = r"(?=\n?\z)";

/// One substitution: a pattern (with `{S}`, `{NS}`, `{W}`, `{B}`, `{END}` standing for the
/// Python classes above) and its replacement in the regex crate's `${n}` syntax.
type Rule = (Regex, &'static str);

fn rule(pattern: &str, replacement: &'static str) -> Rule {
    let pattern =
        pattern.replace("{NS}", NS).replace("{S}", S).replace("{W}", W).replace("{B}", B).replace("{END}", END);
    // The patterns are constants of this file; the tests compile every one.
    (Regex::new(&pattern).unwrap_or_else(|e| panic!("treebank rule {pattern:?}: {e}")), replacement)
}

struct Rules {
    starting_quotes: Vec<Rule>,
    punctuation: Vec<Rule>,
    brackets: Rule,
    double_dashes: Rule,
    ending_quotes: Vec<Rule>,
    contractions: Vec<Rule>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules {
        starting_quotes: vec![
            rule(r"([«“‘„]|[`]+)", " ${1} "),
            rule(r#"^""#, "``"),
            rule(r"(``)", " ${1} "),
            rule(r#"([ (\[{<])("|'{2})"#, "${1} `` "),
            rule(r"(?i)(')(?!re|ve|ll|m|t|s|d)({W}){B}", "${1} ${2}"),
        ],
        punctuation: vec![
            rule(r#"([^.])(\.)([\]\)}>"'»”’ ]*){S}*{END}"#, "${1} ${2} ${3} "),
            rule(r"([:,])([^\p{Nd}])", " ${1} ${2}"),
            rule(r"([:,]){END}", " ${1} "),
            rule(r"\.{2,}", " ${0} "),
            rule(r"[;@#$%&]", " ${0} "),
            rule(r#"([^.])(\.)([\]\)}>"']*){S}*{END}"#, "${1} ${2}${3} "),
            rule(r"[?!]", " ${0} "),
            rule(r"([^'])' ", "${1} ' "),
            rule(r"[*]", " ${0} "),
        ],
        brackets: rule(r"[\]\[\(\)\{\}<>]", " ${0} "),
        double_dashes: rule(r"--", " -- "),
        ending_quotes: vec![
            rule(r"([»”’])", " ${1} "),
            rule(r#"""#, " '' "),
            rule(r"({NS})('')", "${1} ${2} "),
            rule(r"([^' ])('[sS]|'[mM]|'[dD]|') ", "${1} ${2} "),
            rule(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "${1} ${2} "),
        ],
        contractions: vec![
            rule(r"(?i){B}(can)(not){B}", " ${1} ${2} "),
            rule(r"(?i){B}(d)('ye){B}", " ${1} ${2} "),
            rule(r"(?i){B}(gim)(me){B}", " ${1} ${2} "),
            rule(r"(?i){B}(gon)(na){B}", " ${1} ${2} "),
            rule(r"(?i){B}(got)(ta){B}", " ${1} ${2} "),
            rule(r"(?i){B}(lem)(me){B}", " ${1} ${2} "),
            rule(r"(?i){B}(mor)('n){B}", " ${1} ${2} "),
            rule(r"(?i){B}(wan)(na){S}", " ${1} ${2} "),
            rule(r"(?i) ('t)(is){B}", " ${1} ${2} "),
            rule(r"(?i) ('t)(was){B}", " ${1} ${2} "),
        ],
    })
}

fn apply(text: String, (regex, replacement): &Rule) -> String {
    // A backtracking limit is the only way these can fail; nltk's patterns are far from it on
    // any line, and the text is then left as it is.
    regex.try_replacen(&text, 0, *replacement).map(|t| t.into_owned()).unwrap_or(text)
}

/// `NLTKWordTokenizer().tokenize(text)` (nltk 3.5; no parenthesis conversion).
pub fn treebank_tokenize(text: &str) -> Vec<String> {
    let rules = rules();
    let mut text = text.to_string();
    for rule in rules.starting_quotes.iter().chain(&rules.punctuation) {
        text = apply(text, rule);
    }
    text = apply(text, &rules.brackets);
    text = apply(text, &rules.double_dashes);
    text = format!(" {text} ");
    for rule in rules.ending_quotes.iter().chain(&rules.contractions) {
        text = apply(text, rule);
    }
    py_split(&text).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str) -> Vec<String> {
        treebank_tokenize(text)
    }

    /// Expected: `NLTKWordTokenizer().tokenize(text)` under nltk 3.5, Python 3.11.
    #[test]
    fn matches_nltk() {
        let cases: [(&str, &[&str]); 10] = [
            (
                "Good muffins cost $3.88\nin New York.",
                &["Good", "muffins", "cost", "$", "3.88", "in", "New", "York", "."],
            ),
            (
                "\"I can't,\" he said... 'tis gonna (maybe) -- cannot!",
                &[
                    "``", "I", "ca", "n't", ",", "''", "he", "said", "...", "'t", "is", "gon", "na", "(", "maybe", ")",
                    "--", "can", "not", "!",
                ],
            ),
            (
                "«Bonjour» “quoted” ‘x’ it's O'Neil's U.S.A. end.",
                &[
                    "«", "Bonjour", "»", "“", "quoted", "”", "‘", "x", "’", "it", "'s", "O'Neil", "'s", "U.S.A.",
                    "end", ".",
                ],
            ),
            (
                "a.b. c. d:e f: 1:2 x,y 3,000 *star* #hash @at &amp; 100%",
                &[
                    "a.b.", "c.", "d", ":", "e", "f", ":", "1:2", "x", ",", "y", "3,000", "*", "star", "*", "#",
                    "hash", "@", "at", "&", "amp", ";", "100", "%",
                ],
            ),
            ("'hello' and ''quoted'' ``back``", &["'hello", "'", "and", "``", "quoted", "''", "``", "back", "``"]),
            (
                "Wanna go? Gimme that, lemme see. d'ye mor'n",
                &["Wan", "na", "go", "?", "Gim", "me", "that", ",", "lem", "me", "see.", "d", "'ye", "mor", "'", "n"],
            ),
            ("wanna go gotta GOTTA", &["wan", "na", "go", "got", "ta", "GOT", "TA"]),
            ("end with colon:", &["end", "with", "colon", ":"]),
            ("", &[]),
            ("he said \" hi \" . '", &["he", "said", "``", "hi", "``", ".", "'"]),
        ];
        for (text, want) in cases {
            assert_eq!(tok(text), want, "{text:?}");
        }
    }
}
