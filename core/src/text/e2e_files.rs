//! gpt2_decode.py's E2E files (its default `--ref_type e2e`), from records as a job holds them
//! (token ids) and their predictions. Records are grouped by context, groups in order of first
//! appearance; each group has its references (every record's completion, in record order)
//! and one hypothesis (the prediction read last among its records, as the script overwrites).

use std::collections::HashMap;

use super::bpe::decode;
use super::error::E2eTextError;
use super::postprocess::{cut_at_end, post_process, PostProcess};
use crate::predictions::PredictionLine;
use crate::records::Record;

/// The references and the hypothesis of every context group, cut and stripped but not yet
/// post-processed (the script applies `--lower`/`--tokenize` only when writing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2eTexts {
    /// Per group, the references in record order.
    pub references: Vec<Vec<String>>,
    /// Per group, the hypothesis.
    pub hypotheses: Vec<String>,
}

/// Records grouped by context ids, which groups them exactly as the script's text key does:
/// encoding is a function and decoding inverts it, so equal texts are equal ids and back.
struct Groups {
    group_of_id: HashMap<usize, usize>,
    first_id: Vec<usize>,
    references: Vec<Vec<String>>,
}

/// Groups the records `keep` keeps (all when `None`), as gpt2_decode.py fills `refer_dict`
/// under `--filter`: groups in order of their first kept record, references from kept records
/// only. Any record whose context has a group (kept or not) maps to it, since the script
/// looks a prediction up by its context alone.
fn group_records(records: &[Record], keep: Option<&[bool]>) -> Result<Groups, E2eTextError> {
    let kept = |record: &Record| keep.is_none_or(|keep| keep.get(record.id).copied().unwrap_or(false));
    let mut index: HashMap<&[u32], usize> = HashMap::new();
    let mut groups = Groups { group_of_id: HashMap::new(), first_id: Vec::new(), references: Vec::new() };
    for record in records.iter().filter(|r| kept(r)) {
        let group = *index.entry(&record.context).or_insert_with(|| {
            groups.first_id.push(record.id);
            groups.references.push(Vec::new());
            groups.references.len() - 1
        });
        // The script reads the text completion; decoding its ids gives `' ' + completion` and
        // the EOS text, which the same cut and strip remove.
        let completion =
            decode(&record.completion).map_err(|source| E2eTextError::BadCompletion { id: record.id, source })?;
        groups.references[group].push(cut_at_end(&completion).to_owned());
    }
    for record in records {
        if let Some(&group) = index.get(record.context.as_slice()) {
            groups.group_of_id.insert(record.id, group);
        }
    }
    Ok(groups)
}

impl E2eTexts {
    /// Groups `records` and sets each group's hypothesis from `predictions`, `(id, tokens)` in
    /// the order the sample file lists them: a later prediction for the same context replaces
    /// an earlier one, as in the script. Every group needs one.
    pub fn new<'a>(
        records: &[Record],
        predictions: impl IntoIterator<Item = (usize, &'a [u32])>,
    ) -> Result<Self, E2eTextError> {
        Self::kept(records, None, predictions)
    }

    /// [`E2eTexts::new`] over the records `keep` keeps (indexed by record id; all when
    /// `None`), as the script's `--filter`: a prediction whose id is a record but whose
    /// context has no kept record is passed over, as the script passes it over.
    pub fn kept<'a>(
        records: &[Record],
        keep: Option<&[bool]>,
        predictions: impl IntoIterator<Item = (usize, &'a [u32])>,
    ) -> Result<Self, E2eTextError> {
        let groups = group_records(records, keep)?;
        let mut hypotheses: Vec<Option<String>> = vec![None; groups.references.len()];
        for (id, tokens) in predictions {
            let group = match groups.group_of_id.get(&id) {
                Some(&group) => group,
                None if keep.is_some() && id < records.len() => continue,
                None => return Err(E2eTextError::UnknownId { id }),
            };
            let text = decode(tokens).map_err(|source| E2eTextError::BadPrediction { id, source })?;
            hypotheses[group] = Some(cut_at_end(&text).to_owned());
        }
        let hypotheses = hypotheses
            .into_iter()
            .enumerate()
            .map(|(group, hypothesis)| hypothesis.ok_or_else(|| no_prediction(records, groups.first_id[group])))
            .collect::<Result<Vec<String>, E2eTextError>>()?;
        Ok(Self { references: groups.references, hypotheses })
    }

    /// [`E2eTexts::new`] from a predictions file's lines, in file order.
    pub fn from_lines(records: &[Record], lines: &[PredictionLine]) -> Result<Self, E2eTextError> {
        Self::new(records, lines.iter().map(|line| (line.id, line.predict.as_slice())))
    }

    /// The texts as the script writes them with `options`.
    pub fn post_processed(&self, options: PostProcess) -> Self {
        let line = |text: &String| post_process(text, options);
        Self {
            references: self.references.iter().map(|group| group.iter().map(line).collect()).collect(),
            hypotheses: self.hypotheses.iter().map(line).collect(),
        }
    }

    /// The `--output_ref_file` text: each reference on its line, a blank line after each group.
    pub fn reference_file(&self, options: PostProcess) -> String {
        let mut out = String::new();
        for group in &self.references {
            for reference in group {
                out.push_str(&post_process(reference, options));
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// The `--output_pred_file` text: one hypothesis per line, one line per group.
    pub fn prediction_file(&self, options: PostProcess) -> String {
        self.hypotheses.iter().map(|h| post_process(h, options) + "\n").collect()
    }
}

/// What scoring a job needs from its records, kept from intake to completion: for every
/// context group (first-appearance order) its references, and the record whose prediction
/// becomes its hypothesis. Predictions of an ordered output come in id order, so the one the
/// script keeps is that of the group's highest id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct E2eReferences {
    pub groups: Vec<ReferenceGroup>,
}

/// One context group of [`E2eReferences`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceGroup {
    /// The record whose prediction is the group's hypothesis.
    pub record: usize,
    /// Its first record, to name the context in errors.
    pub first_record: usize,
    pub references: Vec<String>,
}

/// Why a record's reference would break e2e-metrics' files, which hold one reference per line
/// and end a context's group at an empty line: an empty completion (missing, or nothing but an
/// end of sequence) would end its group early, and a completion with a line break would add a
/// line, so the groups no longer match the hypotheses and the job could not be scored.
pub fn unscorable_reference(record: &Record, options: PostProcess) -> Option<&'static str> {
    let text = decode(&record.completion).ok()?;
    let line = post_process(cut_at_end(&text), options);
    if line.trim().is_empty() {
        Some(if record.completion.is_empty() {
            "it has no completion, so its context would have an empty reference"
        } else {
            "its completion is empty once cut at the end of sequence, so its context would have an empty reference"
        })
    } else if line.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        Some("its completion holds a line break, so its reference would take two lines")
    } else {
        None
    }
}

impl E2eReferences {
    pub fn from_records(records: &[Record]) -> Result<Self, E2eTextError> {
        Self::from_kept_records(records, None)
    }

    /// The references of the records `keep` keeps (see [`E2eTexts::kept`]); a group's
    /// hypothesis is still the prediction of the last record with its context, kept or not.
    pub fn from_kept_records(records: &[Record], keep: Option<&[bool]>) -> Result<Self, E2eTextError> {
        let groups = group_records(records, keep)?;
        let mut last = groups.first_id.clone();
        for (&id, &group) in &groups.group_of_id {
            last[group] = last[group].max(id);
        }
        let groups = groups
            .references
            .into_iter()
            .zip(groups.first_id)
            .zip(last)
            .map(|((references, first_record), record)| ReferenceGroup { record, first_record, references })
            .collect();
        Ok(Self { groups })
    }

    /// The texts, with each group's hypothesis the prediction `prediction_of` gives for its
    /// record (`None`: that record has no prediction, e.g. its item failed).
    pub fn texts<'a>(&self, prediction_of: impl Fn(usize) -> Option<&'a [u32]>) -> Result<E2eTexts, E2eTextError> {
        let mut hypotheses = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let Some(tokens) = prediction_of(group.record) else {
                return Err(E2eTextError::NoPrediction { context: String::new(), first_id: group.first_record });
            };
            let text = decode(tokens).map_err(|source| E2eTextError::BadPrediction { id: group.record, source })?;
            hypotheses.push(cut_at_end(&text).to_owned());
        }
        let references = self.groups.iter().map(|g| g.references.clone()).collect();
        Ok(E2eTexts { references, hypotheses })
    }
}

fn no_prediction(records: &[Record], first_id: usize) -> E2eTextError {
    let context = records
        .iter()
        .find(|r| r.id == first_id)
        .and_then(|r| decode(&r.context).ok())
        .map(|text| text.trim_end_matches(super::bpe::ENDOFTEXT).to_owned())
        .unwrap_or_default();
    E2eTextError::NoPrediction { context, first_id }
}
