//! The token rules of Stanford CoreNLP 3.4.1's `PTBLexer` (a JFlex scanner) as regular
//! expressions, in the scanner's priority order, with the options pycocoevalcap runs it with
//! (`-preserveLines -lowerCase`, otherwise the 3.4.1 defaults: PTB3 escaping of brackets and
//! quotes, `£` as `#`, no americanisation, no `/` or `*` escaping).
//!
//! Written from the published grammar and checked token for token against the 3.4.1 jar
//! (see `ptb_conformance` tests); where 3.4.1 behaves differently from the grammar files
//! found online, the jar's behaviour is what is written here, with a comment.
//!
//! JFlex picks the longest match over all rules (trailing context counts towards the
//! length), the earlier rule on a tie. The regex crate picks leftmost-first instead, so
//! alternatives inside one pattern are ordered longest-first.

/// What a rule does with the text it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The matched text is the token.
    Keep,
    /// The token is this fixed text.
    Replace(&'static str),
    /// Emit only the first `n` bytes and rescan the rest (`cannot` → `can` + `not`).
    Prefix(usize),
    /// Emit the text and rescan its final period as a token of its own (an abbreviation
    /// that also ends a sentence: `Ltd.` → `Ltd.` `.`).
    DuplicatePeriod,
    /// Quotes mapped to LaTeX style; `true` for an opening quote.
    Quote(bool),
    /// Currency signs mapped (`£` → `#`, `€` → `$`, `¢` → `cents`).
    Currency,
    /// Vulgar fractions mapped (`½` → `1/2`).
    Fraction,
    /// Spaces inside the token become U+00A0 (fractions like `5 7/8`, phone numbers).
    NonBreakingSpace,
    /// A phone number: spaces to U+00A0, parentheses to `-LRB-` `-RRB-`.
    Phone,
    /// `---` and `----` become `--`; other runs of hyphens are kept.
    Hyphens,
    /// Whitespace, newlines and invisible characters: no token.
    Skip,
}

/// One rule: a pattern, an optional trailing context that must follow it (and counts
/// towards the match length) and what to emit.
pub struct Rule {
    pub pattern: String,
    pub trailing: Option<String>,
    pub action: Action,
}

const APOS: &str = r"(?:['\x{92}\x{2019}]|&apos;)";
const APOSETC: &str = r"(?:['\x{91}\x{92}\x{2018}\x{2019}\x{201B}]|&apos;)";
const LETTER: &str = r"\p{L}";
const DIGIT: &str = r"\p{Nd}";
const SPACE: &str = r"[ \t\x{A0}\x{2000}-\x{200A}\x{3000}]";
const NEWLINE: &str = r"(?:\r\n|[\r\n\x{0B}\x{0C}\x{85}\x{2028}\x{2029}])";
// 3.4.1 does not let a tag run across a line end.
const SGML: &str = r"<\/?[A-Za-z!][^>\r\n]*>";
const HYPHEN: &str = r"[-_\x{58A}\x{2010}\x{2011}]";

fn word() -> String {
    // A letter is [:letter:], the soft hyphen, combining marks and the few letter-like blocks
    // JFlex's [:letter:] misses, or an SGML accented-letter entity. In 3.4.1 a word may go
    // on with digits, and `.`, `!` or `?` may join letter-initial parts (eating.It, abc!def).
    let letter = r"(?:[\p{L}\p{M}\x{AD}\x{237}-\x{24F}\x{2C2}-\x{2C5}\x{2D2}-\x{2DF}\x{2E5}-\x{2FF}]|&[aeiouAEIOU](?i:acute|grave|uml);)";
    let part = format!(r"{letter}(?:{letter}|{DIGIT})*");
    format!(r"{part}(?:[.!?]{part})*")
}

fn redaux() -> String {
    format!(r"{APOS}(?:[msdMSD]|(?i:re|ve|ll))")
}

fn sredaux() -> String {
    format!(r"[nN]{APOSETC}[tT]")
}

fn spacenl() -> String {
    format!(r"(?:{SPACE}|{NEWLINE})")
}

fn sentend() -> String {
    let snl = spacenl();
    // 3.4.1 takes any upper-case letter here, not only A-Z.
    format!(r"{snl}(?:{snl}|\p{{Lu}}|{SGML})")
}

fn acro() -> String {
    r"(?:[A-Za-z](?:\.[A-Za-z])+|(?i:canada|sino|korean|eu|japan|non)-(?i:u)\.(?i:s)|(?i:u)\.(?i:s)\.-(?:(?i:u)\.(?i:s)\.(?i:s)\.(?i:r)|(?i:u)\.(?i:k)))"
        .to_string()
}

fn number() -> String {
    format!(r"[-+]?(?:{DIGIT}*(?:[.:,\x{{AD}}\x{{66B}}\x{{66C}}]{DIGIT}+)+|{DIGIT}+)")
}

fn thing() -> String {
    let unit = format!(r"(?:[dDoOlL]{APOSETC}[\p{{L}}\p{{Nd}}])?[\p{{L}}\p{{Nd}}]+");
    format!(r"{unit}(?:{HYPHEN}{unit})*")
}

fn hthing() -> String {
    let acro = acro();
    format!(r"[A-Za-z0-9][A-Za-z0-9.,\x{{AD}}]*(?:-(?:{acro}\.|[A-Za-z0-9\x{{AD}}]+))+")
}

fn abbrev1() -> String {
    // Case-insensitive words, except where the grammar writes a first letter as a one-letter
    // character class ([A]rk, [M]ass ...): JFlex's %caseless does not reach into classes.
    let words = [
        // months and days
        "(?i:jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)",
        "(?i:mon|tues|tue|wed|thurs|thu|fri)",
        // states
        "(?i:ala|ariz|calif|colo|conn|dak|del|fla|ga|ind|kans|kan|ky|la|md|mich|minn|mo|mont|neb|nev|okla|pa|penn|tenn|tex|va|vt|wisc|wis|wyo)",
        "A(?i:rk)|I(?i:ll)|M(?i:ass)|M(?i:iss)|O(?i:re)|W(?i:ash)",
        // companies, numbers, post-name titles, and etc. al. seq.
        "(?i:inc|cos|co|corp|ptys|pty|ptys|ppty|pptys|ppty|ltd|plc|bancorp|dept|bhd|assn|univ|intl|sys)",
        "(?i:nos|no|prop|ph|tel|est|ext|sq|ft)",
        "(?i:jr|sr|bros|ed\\.d|ph\\.d|blvd|rd|esq)",
        "(?i:etc|al|seq)",
    ];
    format!(r"(?:{})\.", words.join("|"))
}

fn abbrev4() -> String {
    let titles = "(?i:mrs|mr|ms|drs|dr|profs|prof|sens|sen|reps|rep|attys|atty|lt|col|gen|messrs|govs|gov|adm|rev|maj|sgt|cpl|pvt|mt|capt|ste|st|ave|pres|lieut|hon|brig|comdr|cmdr|pfc|spc|supts|supt|det)|M(?i:iss)";
    let acro = acro();
    format!(r"(?:{acro}|(?i:a\.k\.a)|{titles}|(?i:vs|alex|wm|jos|cie|cf|treas|invt|elec|natl|mfg|mtg)|[A-Za-z])")
}

fn apowords() -> Vec<String> {
    vec![
        format!(r"[A-HJ-XZn]{APOSETC}{LETTER}{{2}}{LETTER}*"),
        format!(r"{LETTER}+[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{LETTER}*"),
        format!(r"{APOS}n{APOS}?|[lLdDjJ]{APOS}|(?i:dunkin|somethin|ol){APOS}|{APOS}(?i:em|till|til|cause)"),
        format!(r"{APOS}[2-9]0(?i:s)|(?i:cont'd\.|cont'd|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)"),
    ]
}

fn miscsymbol() -> String {
    r"[\x{A6}\x{A7}\x{A8}\x{A9}\x{AC}\x{AE}\x{AF}\x{B0}-\x{BA}\x{D7}\x{F7}\x{387}\x{5BE}\x{5C0}\x{5C3}\x{5C6}\x{5F3}\x{5F4}\x{600}-\x{603}\x{606}-\x{60A}\x{60C}\x{614}\x{61B}\x{61E}\x{66A}\x{66D}\x{703}-\x{70D}\x{7F6}-\x{7F8}\x{964}\x{965}\x{E4F}\x{2020}-\x{2023}\x{2032}-\x{2038}\x{2044}\x{207A}-\x{207F}\x{208A}-\x{208E}\x{2100}-\x{214F}\x{2190}-\x{21FF}\x{2200}-\x{22FF}\x{2300}-\x{23FF}\x{2600}-\x{26FF}\x{3012}\x{30FB}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF20}\x{FF3B}-\x{FF40}\x{FF5B}-\x{FF65}]"
        .to_string()
}

/// The words after which an acronym's period also ends the sentence. Their first letter is a
/// character class in the grammar, so only it is case-sensitive.
fn sentence_starters() -> String {
    let words = [
        "About",
        "According",
        "Additionally",
        "After",
        "An",
        "A",
        "As",
        "At",
        "But",
        "Earlier",
        "He",
        "Her",
        "Here",
        "However",
        "If",
        "In",
        "It",
        "Last",
        "Many",
        "More",
        "Mr.",
        "Ms.",
        "Now",
        "Once",
        "One",
        "Other",
        "Our",
        "She",
        "Since",
        "So",
        "Some",
        "Such",
        "That",
        "The",
        "Then",
        "There",
        "These",
        "They",
        "This",
        "We",
        "When",
        "While",
        "What",
        "Yet",
        "You",
    ];
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            let (first, rest) = w.split_at(1);
            if rest.is_empty() {
                first.to_string()
            } else {
                format!("{first}(?i:{})", regex::escape(rest))
            }
        })
        .collect();
    alternatives.join("|")
}

/// The context after an acronym's period that makes it a sentence end: spaces or newlines,
/// then a sentence-start word or an SGML tag, then a space or newline.
fn starts_sentence() -> String {
    let snl = spacenl();
    format!("{snl}+(?:{}|{SGML}){snl}", sentence_starters())
}

fn rule(pattern: impl Into<String>, action: Action) -> Rule {
    Rule { pattern: pattern.into(), trailing: None, action }
}

fn rule_before(pattern: impl Into<String>, trailing: impl Into<String>, action: Action) -> Rule {
    Rule { pattern: pattern.into(), trailing: Some(trailing.into()), action }
}

/// The rules in priority order.
pub fn rules() -> Vec<Rule> {
    let mut rules = word_rules();
    rules.extend(url_rules());
    rules.extend(number_rules());
    rules.extend(abbreviation_rules());
    rules.extend(punctuation_rules());
    rules
}

/// Assimilations, SGML and entities, words with their clitics, apostrophe words.
fn word_rules() -> Vec<Rule> {
    use Action::*;
    let (word, redaux, sredaux) = (word(), redaux(), sredaux());
    let mut rules = vec![
        rule("(?i:cannot)", Prefix(3)),
        // 3.4.1 also splits these (gon na, wan na ...), unlike the older grammar files.
        rule("(?i:gonna|gotta|lemme|gimme|wanna)", Prefix(3)),
        rule(SGML, Keep),
        rule(r"&(?i:md|mdash|ndash);|[\x{96}\x{97}\x{2013}\x{2014}\x{2015}]", Replace("--")),
        rule("&(?i:amp);", Replace("&")),
        rule("&(?i:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);", Keep),
        rule_before(word.clone(), redaux.clone(), Keep),
        rule_before(r"[A-Za-z\x{AD}]*[A-MO-Za-mo-z]\x{AD}*", sredaux.clone(), Keep),
        rule(word.clone(), Keep),
    ];
    rules.extend(apowords().into_iter().map(|p| rule(p, Keep)));
    // 3.4.1 splits 'tis and 'twas as 't + is / was.
    rules.push(rule_before(format!("{APOS}(?i:t)"), "(?i:is|was)", Keep));
    rules.push(rule_before(format!("[yY]{APOS}"), LETTER, Keep));
    rules
}

/// URLs and e-mail addresses.
fn url_rules() -> Vec<Rule> {
    use Action::*;
    vec![
        rule(r#"https?://[^ \t\n\x{0C}\r"<>|()]+[^ \t\n\x{0C}\r"<>|.!?(){},-]"#, Keep),
        rule(
            // `,-_` in the grammar's class is a range (U+002C..U+005F): digits, capitals, `:`, `/`
            // and `@` cannot precede the `.com`.
            r#"(?:(?:www\.(?:[^ \t\n\x{0C}\r"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(?:(?:[^ \t\n\x{0C}\r"`'<>|.!?(){}\x{2C}-\x{5F}$]+\.)+(?i:com|net|org|edu)))(?:/[^ \t\n\x{0C}\r"<>|()]+[^ \t\n\x{0C}\r"<>|.!?(){},-])?"#,
            Keep,
        ),
        rule(
            r#"[a-zA-Z0-9][^ \t\n\x{0C}\r"<>|()\x{A0}]*@(?:[^ \t\n\x{0C}\r"<>|().\x{A0}]+\.)*[^ \t\n\x{0C}\r"<>|().\x{A0}]+"#,
            Keep,
        ),
    ]
}

/// Clitics standing alone, dates, numbers, fractions, Treebank specials, currency.
fn number_rules() -> Vec<Rule> {
    use Action::*;
    let (redaux, sredaux) = (redaux(), sredaux());
    vec![
        rule_before(redaux.clone(), "[^A-Za-z]", Quote(false)),
        rule(sredaux.clone(), Quote(false)),
        rule(format!(r"{DIGIT}{{1,2}}[-/]{DIGIT}{{1,2}}[-/]{DIGIT}{{2,4}}"), Keep),
        rule(number(), Keep),
        rule(
            r"[\x{207A}\x{207B}\x{208A}\x{208B}]?(?:[\x{2070}\x{B9}\x{B2}\x{B3}\x{2074}-\x{2079}]+|[\x{2080}-\x{2089}]+)",
            Keep,
        ),
        rule(
            format!(r"(?:{DIGIT}{{1,4}}[- \x{{A0}}])?{DIGIT}{{1,4}}(?:\\?/|\x{{2044}}){DIGIT}{{1,4}}"),
            NonBreakingSpace,
        ),
        rule(r"[\x{BC}\x{BD}\x{BE}\x{2153}-\x{215E}]", Fraction),
        rule(
            format!(
                r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|(?i:c\.d\.s|pro-|anti-|s(?:&|&amp;)p-500|s(?:&|&amp;)ls|cap{APOS}n|c{APOS}est)"
            ),
            Keep,
        ),
        rule(r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}", Keep),
        rule(r"[A-Z]*\$|#", Keep),
        rule(
            r"[\x{A2}\x{A3}\x{A4}\x{A5}\x{80}\x{20A0}\x{20AC}\x{60B}\x{E3F}\x{20A4}\x{FFE0}\x{FFE1}\x{FFE5}\x{FFE6}]",
            Currency,
        ),
    ]
}

/// Abbreviations and acronyms, with the sentence-end cases that repeat or split the period.
fn abbreviation_rules() -> Vec<Rule> {
    use Action::*;
    let (word, acro) = (word(), acro());
    let insentp = "[,;:]";
    vec![
        // 3.4.1 lets newlines and SGML tags take part in the sentence-start context.
        rule_before(format!(r"{acro}\."), starts_sentence(), DuplicatePeriod),
        rule_before(abbrev1(), sentend(), DuplicatePeriod),
        // 3.4.1: a single letter and a period before a sentence start give the letter alone
        // (`plan B. The` → `B` `.` `The`), where an acronym's period would be duplicated.
        rule_before("[A-Za-z]", format!(r"\.{}", starts_sentence()), Keep),
        // Two characters of any kind after it make a plain abbreviation (and, being counted
        // in the match length, beat a word like `Inc.y`); with less, the input ends there and
        // so does a sentence.
        rule_before(abbrev1(), "(?s:..)", Keep),
        rule(abbrev1(), DuplicatePeriod),
        rule(format!(r"{}\.", abbrev4()), Keep),
        rule_before(abbrev4(), SPACE, Keep),
        rule_before(acro.clone(), spacenl(), Keep),
        rule_before(format!("{APOS}[0-9][0-9]"), spacenl(), Keep),
        rule_before(format!(r"{word}\."), insentp, Keep),
        rule(
            r"(?:\([0-9]{2,3}\)[ \x{A0}]?|(?:\+\+?)?(?:[0-9]{2,4}[- \x{A0}])?[0-9]{2,4}[- \x{A0}/])[0-9]{3,4}(?:[- \x{A0}][0-9]{3,5}|(?:-[0-9]){3,4})?",
            Phone,
        ),
    ]
}

/// Quotes, brackets, dashes, ellipses, punctuation, hyphenated things, whitespace.
fn punctuation_rules() -> Vec<Rule> {
    use Action::*;
    let redaux = redaux();
    let insentp = "[,;:]";
    vec![
        rule_before(r#""|&(?i:quot);"#, "[A-Za-z0-9$]", Quote(true)),
        rule(r#""|&(?i:quot);"#, Quote(false)),
        rule(r"\+|[%&\x{2030}\x{2031}]|~|\^|\||\\|\x{7F}", Keep),
        rule(r"\[", Replace("-LSB-")),
        rule(r"\]", Replace("-RSB-")),
        // 3.4.1 keeps a doubled angle bracket together (`<<`, `>>`).
        rule(r"<<|>>|[<>]|&(?i:lt|gt);", Keep),
        rule(r"\{", Replace("-LCB-")),
        rule(r"\}", Replace("-RCB-")),
        rule(r"\(", Replace("-LRB-")),
        rule(r"\)", Replace("-RRB-")),
        rule("-+", Hyphens),
        rule(r"\.{3,5}|(?:\.[ \x{A0}]){2,4}\.|[\x{85}\x{2026}]", Replace("...")),
        // 3.4.1 keeps a hashtag or a handle whole (#near, @Zizzi).
        rule(r"#\p{L}[\p{L}\p{Nd}]*|@[A-Za-z][A-Za-z0-9]*", Keep),
        rule("@+|#+|_+", Keep),
        rule(r"\*+|(?:\\\*){1,3}", Keep),
        rule(insentp, Keep),
        rule("[?!]+", Keep),
        rule(r"[.\x{A1}\x{BF}\x{37E}\x{589}\x{61F}\x{6D4}\x{700}-\x{702}\x{7FA}]", Keep),
        rule("=", Keep),
        rule("/", Keep),
        rule_before(format!(r"{}\.", hthing()), insentp, Keep),
        rule(hthing(), Keep),
        rule_before(format!(r"{}\.", thing()), insentp, Keep),
        rule(thing(), Keep),
        rule_before(r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+\.", insentp, Keep),
        rule(r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+", Keep),
        rule_before("'", r"[A-Za-z][^ \t\n\r\x{A0}]", Quote(true)),
        rule(redaux, Quote(false)),
        rule(
            format!(
                r"''|[`\x{{2018}}\x{{2019}}\x{{201A}}\x{{201B}}\x{{201C}}\x{{201D}}\x{{91}}\x{{92}}\x{{93}}\x{{94}}\x{{201E}}\x{{201F}}\x{{2039}}\x{{203A}}\x{{AB}}\x{{BB}}]{{1,2}}|{APOS}"
            ),
            Quote(false),
        ),
        rule(miscsymbol(), Keep),
        rule(format!(r"\x{{0}}|{SPACE}+|[\x{{200B}}\x{{200E}}\x{{200F}}\x{{FEFF}}]|&(?i:nbsp);"), Skip),
        rule(NEWLINE, Skip),
    ]
}
