//! encode/decode against encoder.py's outputs (CPython 3.11, microsoft/LoRA's vocab files).

use crate::text::*;

/// GPT-2's single-byte tokens, from encoder.json through `bytes_to_unicode`.
const BYTE_E2: u32 = 158;
const BYTE_82: u32 = 224;
const BYTE_AC: u32 = 105;
const BYTE_F0: u32 = 172;
const BYTE_80: u32 = 222;
const BYTE_ED: u32 = 169;
const BYTE_A0: u32 = 254;
const BYTE_FF: u32 = 187;

#[test]
fn invalid_utf8_is_replaced_as_python_replace_does() {
    // (tokens, what Python's `bytes.decode('utf-8', errors='replace')` printed)
    let cases: [(&[u32], &str); 8] = [
        (&[BYTE_E2, BYTE_82], "\u{fffd}"),
        (&[BYTE_E2, BYTE_82, 32], "\u{fffd}A"),
        (&[BYTE_E2], "\u{fffd}"),
        (&[BYTE_F0, BYTE_80], "\u{fffd}\u{fffd}"),
        (&[BYTE_ED, BYTE_A0, BYTE_80], "\u{fffd}\u{fffd}\u{fffd}"),
        (&[BYTE_FF], "\u{fffd}"),
        (&[BYTE_E2, BYTE_82, BYTE_AC, BYTE_80], "\u{20ac}\u{fffd}"),
        (&[BYTE_E2, BYTE_82, BYTE_AC], "\u{20ac}"),
    ];
    for (tokens, python) in cases {
        assert_eq!(decode(tokens).expect("in vocabulary"), python, "tokens {tokens:?}");
    }
}

#[test]
fn encode_matches_encoder_py() {
    // (text, encoder.py's `encode(text)[0]`)
    let cases: [(&str, &[u32]); 16] = [
        ("Hello world", &[15496, 995]),
        ("  two  spaces  ", &[220, 734, 220, 9029, 220, 220]),
        ("line\nbreak\n\n", &[1370, 198, 9032, 628]),
        ("tab\there", &[8658, 197, 1456]),
        ("it's THEY'RE we'll I'D", &[270, 338, 33302, 6, 2200, 356, 1183, 314, 6, 35]),
        ("\u{a3}20 caf\u{e9} na\u{ef}ve", &[14988, 1238, 40304, 41492]),
        ("<|endoftext|>", &[27, 91, 437, 1659, 5239, 91, 29]),
        ("nbsp\u{a0}x", &[77, 24145, 1849, 87]),
        ("ideo\u{3000}space", &[1651, 5099, 222, 13200]),
        ("fs\u{1c}gs\u{1d}", &[9501, 216, 14542, 217]),
        ("nel\u{85}x", &[4954, 126, 227, 87]),
        ("emoji \u{1f600}!", &[368, 31370, 30325, 222, 0]),
        ("x   \n y", &[87, 220, 220, 220, 198, 331]),
        ("trail   ", &[9535, 346, 220, 220, 220]),
        ("", &[]),
        ("\u{24b6} \u{b2}\u{bd} \u{663}", &[158, 240, 114, 1587, 110, 23141, 18923, 96]),
    ];
    for (text, python) in cases {
        assert_eq!(encode(text), python, "text {text:?}");
        assert_eq!(decode(python).expect("in vocabulary"), text, "decode inverts encode");
    }
}

#[test]
fn endoftext_and_padding_decode_as_text() {
    assert_eq!(decode(&[ENDOFTEXT_ID]).expect("in vocabulary"), ENDOFTEXT);
    // gpt2_beam.py pads with 0, which is GPT-2's `!`.
    assert_eq!(decode(&[220, ENDOFTEXT_ID, 0, 0]).expect("in vocabulary"), " <|endoftext|>!!");
}

#[test]
fn ids_past_the_vocabulary_are_errors() {
    assert_eq!(decode(&[1, 50257]), Err(UnknownToken { token: 50257, index: 1 }));
    assert_eq!(decode_bytes(&[u32::MAX]), Err(UnknownToken { token: u32::MAX, index: 0 }));
    assert!(decode(&[50256]).is_ok(), "the last id is in");
}
