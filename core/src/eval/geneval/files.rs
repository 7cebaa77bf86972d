//! eval.py's reading of its files (`parse`): each reference file and the hypothesis file read
//! whole as UTF-8 and split on `\n`, so item `j` is line `j` of every file. A file ending with a
//! newline (as gpt2_decode.py writes them all) gives one more, empty, item: microsoft/LoRA issue
//! #138's phantom item. [`EvalFiles::parse`] reads the files the way lorabeam scores them, that
//! item dropped; [`EvalFiles::parse_verbatim`] keeps it, as eval.py sees it.

use super::super::error::EvalError;

/// The items of eval.py's files: per item its references (one per file) and its hypothesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalFiles {
    pub references: Vec<Vec<String>>,
    pub hypotheses: Vec<String>,
    /// Whether the last item is the phantom one a final newline makes (kept only by
    /// [`EvalFiles::parse_verbatim`]).
    pub phantom: bool,
}

fn lines(text: &str) -> Vec<&str> {
    text.split('\n').collect()
}

impl EvalFiles {
    /// The items without the phantom one: one final newline is dropped from every file first
    /// (what the README's pipeline needs for METEOR to run at all).
    pub fn parse(reference_files: &[String], hypothesis_file: &str) -> Result<Self, EvalError> {
        if hypothesis_file.is_empty() && reference_files.iter().all(String::is_empty) {
            return Err(EvalError::NoInstances);
        }
        let strip = |text: &str| text.strip_suffix('\n').unwrap_or(text).to_string();
        let references: Vec<String> = reference_files.iter().map(|f| strip(f)).collect();
        let mut files = Self::split(&references, &strip(hypothesis_file))?;
        files.phantom = false;
        Ok(files)
    }

    /// The items exactly as eval.py reads them, the phantom item of a final newline included.
    pub fn parse_verbatim(reference_files: &[String], hypothesis_file: &str) -> Result<Self, EvalError> {
        Self::split(reference_files, hypothesis_file)
    }

    fn split(reference_files: &[String], hypothesis_file: &str) -> Result<Self, EvalError> {
        if reference_files.is_empty() {
            return Err(EvalError::NoReferenceFiles);
        }
        // gpt2_decode.py's files for no context at all are empty: no item (eval.py would read
        // one empty item, then fail).
        if hypothesis_file.is_empty() && reference_files.iter().all(String::is_empty) {
            return Err(EvalError::NoInstances);
        }
        let hypotheses: Vec<String> = lines(hypothesis_file).into_iter().map(str::to_string).collect();
        let mut references: Vec<Vec<String>> = vec![Vec::with_capacity(reference_files.len()); hypotheses.len()];
        for (index, file) in reference_files.iter().enumerate() {
            let file_lines = lines(file);
            if file_lines.len() != hypotheses.len() {
                return Err(EvalError::ReferenceFileLength {
                    index,
                    lines: file_lines.len(),
                    hypotheses: hypotheses.len(),
                });
            }
            for (item, line) in references.iter_mut().zip(file_lines) {
                item.push(line.to_string());
            }
        }
        let phantom = hypothesis_file.ends_with('\n') && reference_files.iter().all(|f| f.ends_with('\n'));
        Ok(Self { references, hypotheses, phantom })
    }

    /// Items, the phantom one included when kept.
    pub fn len(&self) -> usize {
        self.hypotheses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hypotheses.is_empty()
    }

    /// The files' lines as multi-bleu-detok.perl reads them: Perl's line reading yields no line
    /// after a final newline, so an empty last hypothesis (the phantom item, or an empty
    /// prediction scored last) is not read, and its item is not scored.
    pub fn perl_items(&self) -> (&[Vec<String>], &[String]) {
        let n = self.len() - usize::from(self.hypotheses.last().is_some_and(String::is_empty));
        (&self.references[..n], &self.hypotheses[..n])
    }
}
