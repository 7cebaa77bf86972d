//! eval.py's `run()` over its files' items: BLEU by multi-bleu-detok.perl on the raw lines,
//! chrF++ on the raw texts, and BLEU NLTK, METEOR and TER on the word_tokenize'd texts.
//! METEOR runs in its own thread (a child JVM) while the others are computed.

use std::collections::HashMap;

use super::chrf::corpus_chrf;
use super::files::EvalFiles;
use super::multi_bleu::{multi_bleu, MultiBleu};
use super::nltk_bleu::nltk_corpus_bleu;
use super::ter::corpus_ter;
use super::word_tokenize::WordTokenizer;
use crate::eval::{MeteorRunner, MeteorUnavailable};

/// Why a metric has no number (eval.py would crash, print -1, or lacks an input). Never a
/// guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// What the reason for METEOR is when eval.py reads the phantom item (microsoft/LoRA #138).
pub const PHANTOM_METEOR: &str = "eval.py reads a phantom empty item after the files' final newline, so METEOR sees \
     one hypothesis more than reference groups and fails (\"test and reference not same length\"; it prints -1: \
     microsoft/LoRA issue #138)";

/// Why METEOR fails when eval.py's METEOR files end in an empty line other than the phantom one.
pub const SHORT_METEOR_FILE: &str = "eval.py joins METEOR's lines with newlines, and the last item's tokenized \
     hypothesis or last reference is empty, so the file ends in a newline the jar does not read as a line: METEOR \
     fails (\"test and reference not same length\"; eval.py prints -1)";

/// Whether the METEOR jar would read one line fewer than eval.py wrote: the last hypothesis or
/// the last of the linearised references (`num_refs` per item) is empty.
fn meteor_file_short(references: &[Vec<String>], hypotheses: &[String], num_refs: usize) -> bool {
    let last_ref = references.last().and_then(|refs| refs[..refs.len().min(num_refs)].last());
    hypotheses.last().is_some_and(String::is_empty) || last_ref.is_some_and(String::is_empty)
}

/// eval.py's results at full precision, for one set of files.
#[derive(Debug, Clone, PartialEq)]
pub struct GenEvalScores {
    /// Items scored (the phantom one included when kept).
    pub items: usize,
    /// multi-bleu-detok.perl's BLEU (0 to 100).
    pub bleu: Result<MultiBleu, Unavailable>,
    /// nltk's corpus BLEU, a fraction.
    pub bleu_nltk: Result<f64, Unavailable>,
    pub meteor: Result<f64, Unavailable>,
    pub ter: Result<f64, Unavailable>,
    /// chrF++, a fraction.
    pub chrf: Result<f64, Unavailable>,
}

/// Every text of the items word_tokenize'd and joined by spaces, each distinct text once.
fn tokenized(files: &EvalFiles, tokenizer: &WordTokenizer) -> Result<(Vec<Vec<String>>, Vec<String>), Unavailable> {
    let mut cache: HashMap<&str, String> = HashMap::new();
    let texts = files.references.iter().flatten().chain(&files.hypotheses);
    for text in texts {
        if !cache.contains_key(text.as_str()) {
            let joined = tokenizer.joined(text).map_err(|e| Unavailable(format!("word_tokenize: {e}")))?;
            cache.insert(text, joined);
        }
    }
    let tok = |text: &String| cache.get(text.as_str()).cloned().unwrap_or_default();
    let references = files.references.iter().map(|refs| refs.iter().map(tok).collect()).collect();
    Ok((references, files.hypotheses.iter().map(tok).collect()))
}

/// Scores eval.py's items with `num_refs` references each (`-nr`). METEOR runs when `meteor`
/// is a runner (on the kept JVM) and is unavailable with its reason otherwise; chrF++ is
/// computed only when `chrf` is set.
pub fn geneval_scores(
    files: &EvalFiles,
    num_refs: usize,
    tokenizer: &WordTokenizer,
    meteor: &Result<MeteorRunner, MeteorUnavailable>,
    chrf: bool,
) -> GenEvalScores {
    let tokens = tokenized(files, tokenizer);
    std::thread::scope(|scope| {
        let short = |(refs, hyps): &(Vec<Vec<String>>, Vec<String>)| meteor_file_short(refs, hyps, num_refs);
        let meteor_thread = match (&tokens, meteor) {
            _ if files.phantom => None,
            (Ok(tokens), _) if short(tokens) => None,
            (Ok((refs, hyps)), Ok(runner)) => {
                Some(scope.spawn(move || runner.score_references(&cut(refs, num_refs), hyps)))
            }
            _ => None,
        };
        let (references, hypotheses) = files.perl_items();
        let bleu = multi_bleu(references, hypotheses).ok_or_else(|| {
            Unavailable(
                "multi-bleu-detok.perl stops without a score (no reference words, or no hypothesis words)".into(),
            )
        });
        let chrf = match chrf {
            true => corpus_chrf(&files.references, &files.hypotheses, num_refs)
                .ok_or_else(|| Unavailable("no item has a non-blank reference (chrF.py divides by zero)".into())),
            false => Err(Unavailable("not asked for".into())),
        };
        let (bleu_nltk, ter) = match &tokens {
            Ok((refs, hyps)) => (
                Ok(nltk_corpus_bleu(refs, hyps)),
                corpus_ter(refs, hyps, num_refs).ok_or_else(|| Unavailable("no item".into())),
            ),
            Err(why) => (Err(why.clone()), Err(why.clone())),
        };
        let meteor = match (meteor_thread, &tokens, meteor) {
            (Some(handle), _, _) => handle
                .join()
                .unwrap_or_else(|_| Err(MeteorUnavailable::new("the METEOR thread panicked")))
                .map_err(|e| Unavailable(e.reason)),
            (None, _, _) if files.phantom => Err(Unavailable(PHANTOM_METEOR.into())),
            (None, Ok(tokens), _) if short(tokens) => Err(Unavailable(SHORT_METEOR_FILE.into())),
            (None, Err(why), _) => Err(why.clone()),
            (None, Ok(_), Err(why)) => Err(Unavailable(why.reason.clone())),
            (None, Ok(_), Ok(_)) => Err(Unavailable("METEOR did not run".into())),
        };
        GenEvalScores { items: files.len(), bleu, bleu_nltk, meteor, ter, chrf }
    })
}

/// Each item's first `n` references (eval.py's `refs[i] for i in range(num_refs)`).
fn cut(references: &[Vec<String>], n: usize) -> Vec<Vec<String>> {
    references.iter().map(|refs| refs.iter().take(n).cloned().collect()).collect()
}

/// gpt2_decode.py's files for one subset, and eval.py's scores of them.
#[derive(Debug, Clone)]
pub struct ScoredFiles {
    /// `reference0` … `reference{N-1}`.
    pub reference_files: Vec<String>,
    /// The hypothesis file.
    pub prediction_file: String,
    pub scores: GenEvalScores,
}

/// How one subset is scored.
#[derive(Debug, Clone, Copy)]
pub struct ScoreOptions<'a> {
    /// gpt2_decode.py's `--ref_num`, and eval.py's `-nr`.
    pub ref_num: usize,
    /// gpt2_decode.py's `--tokenize` and `--lower`.
    pub post: crate::text::PostProcess,
    pub tokenizer: &'a WordTokenizer,
    pub meteor: &'a Result<MeteorRunner, MeteorUnavailable>,
    /// Also chrF++ (eval.py's `-m ...,chrf++`).
    pub chrf: bool,
    /// Score the files as eval.py reads them, the phantom item of their final newline
    /// included (what microsoft/LoRA's README prints), instead of without it.
    pub verbatim: bool,
}

/// Writes `texts` as gpt2_decode.py writes them and scores the files as eval.py reads them.
pub fn score_texts(
    texts: &crate::text::E2eTexts,
    options: ScoreOptions<'_>,
) -> Result<ScoredFiles, crate::eval::EvalError> {
    let reference_files = texts.reference_files(options.ref_num, options.post);
    let prediction_file = texts.prediction_file(options.post);
    let files = match options.verbatim {
        true => EvalFiles::parse_verbatim(&reference_files, &prediction_file)?,
        false => EvalFiles::parse(&reference_files, &prediction_file)?,
    };
    let scores = geneval_scores(&files, options.ref_num, options.tokenizer, options.meteor, options.chrf);
    Ok(ScoredFiles { reference_files, prediction_file, scores })
}
