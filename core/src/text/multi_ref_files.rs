//! gpt2_decode.py's WebNLG and DART files (`--ref_type webnlg|dart --ref_num N`): the
//! references go into N files `reference0` … `reference{N-1}` in the `--output_ref_file`
//! folder, file `i` holding each context's `i`-th reference (its first one where it has fewer
//! than `i + 1`, references past the N-th dropped), one line per context; the prediction file
//! is E2E's, one hypothesis per context. Each line ends with a newline, the last one included.

use super::e2e_files::E2eTexts;
use super::postprocess::{post_process, PostProcess};

/// The name of reference file `index` in the `--output_ref_file` folder.
pub fn reference_file_name(index: usize) -> String {
    format!("reference{index}")
}

impl E2eTexts {
    /// The `--ref_num` reference files' texts, file `i` at index `i`. A context with no
    /// reference (impossible from records, which each give one) writes an empty line.
    pub fn reference_files(&self, ref_num: usize, options: PostProcess) -> Vec<String> {
        let mut files = vec![String::new(); ref_num];
        for group in &self.references {
            let Some(first) = group.first() else {
                files.iter_mut().for_each(|file| file.push('\n'));
                continue;
            };
            for (index, file) in files.iter_mut().enumerate() {
                file.push_str(&post_process(group.get(index).unwrap_or(first), options));
                file.push('\n');
            }
        }
        files
    }
}
