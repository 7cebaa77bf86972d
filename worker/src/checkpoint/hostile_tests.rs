//! One test per way a hostile probe drove the readers out of bounds, each building its bytes
//! here and asserting the specific refusal.

use super::*;

#[test]
fn libtorch_errors_are_cut_to_their_first_line() {
    let storage = Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
    let e = storage.f_as_strided([10], [1], 0).expect_err("out of bounds");
    let full = e.to_string();
    let line = torch_error_line(&e);
    assert!(!line.is_empty() && !line.contains('\n') && line.len() <= 300, "{line}");
    assert!(!line.contains("Exception raised from") && !line.contains("frame #"), "{line}");
    assert!(line.contains("out of bounds"), "{line}");
    assert!(full.contains("Exception raised from"), "libtorch's text holds its backtrace: {full}");
    assert_eq!(short_torch_error(&e), line);
    let shown = crate::model::ModelError::from(e).to_string();
    assert_eq!(shown, format!("libtorch: {line}"));
}
