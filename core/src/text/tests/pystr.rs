//! Python's whitespace, `\w` and `lower()` as gpt2_decode.py meets them.

use crate::text::*;

#[test]
fn python_whitespace_is_wider_than_rusts() {
    // CPython 3.11's `str.isspace()`, every code point it holds for.
    let python: [u32; 29] = [
        0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
        0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    ];
    let ours: Vec<u32> = (0..=0x10ffff).filter_map(char::from_u32).filter(|&c| is_py_space(c)).map(u32::from).collect();
    assert_eq!(ours, python);
    assert!(!'\u{1c}'.is_whitespace(), "why Rust's trim would not do");
    assert_eq!(py_strip("\u{1c} \u{3000}x y\u{85}\u{a0}"), "x y");
    assert_eq!(py_split(" a\u{2028}b\u{1f}\u{1f}c ").collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(py_split("\u{200b}").count(), 1, "U+200B is not a space to Python");
}

#[test]
fn tokenize_splits_non_word_characters() {
    // Outputs of gpt2_decode.py's `stardard_tokenize` under CPython 3.11.
    assert_eq!(standard_tokenize("it's a non-family-friendly café."), "it ' s a non - family - friendly café .");
    assert_eq!(standard_tokenize("  one_ref ,  x²½ Ⓐ \u{3000}!! "), "one_ref , x²½ Ⓐ ! !");
    assert_eq!(standard_tokenize("£20-£25"), "£ 20 - £ 25");
    assert_eq!(standard_tokenize(""), "");
}

#[test]
fn lower_follows_python() {
    assert_eq!(py_lower("ΣΑΣ 'S Ⓐ Café İ"), "σας 's ⓐ café i\u{307}");
}
