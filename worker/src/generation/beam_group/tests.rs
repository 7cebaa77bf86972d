use super::*;
use lorabeam_core::{DecodeParams, ModelLimits};

fn params(beam: usize, eval_len: usize, length_penalty: f64) -> ValidDecodeParams {
    DecodeParams { beam, eval_len, seq_len: 64, length_penalty, no_repeat_ngram_size: 0, ..Default::default() }
        .validate(ModelLimits { vocab_size: 50257, n_positions: 64 })
        .expect("valid")
}

fn choice(parent: usize, token: u32, score: f64) -> Choice {
    Choice { parent, token, score }
}

#[test]
fn eos_beam_becomes_candidate_and_is_dropped() {
    let p = params(2, 5, 1.0);
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, 7, -0.1), choice(0, 50256, -0.5)], &p, ScoreWidth::F64);
    assert_eq!(group.scores().collect::<Vec<_>>(), vec![-0.1, f64::NEG_INFINITY]);
    assert_eq!(group.prediction(5), vec![50256, 0, 0, 0, 0]);
    assert!(!group.is_finished(), "beam 0 (-0.1 / 5) can still beat -0.5");
}

#[test]
fn stops_when_no_live_beam_can_win() {
    let p = params(2, 10, 1.0);
    let mut group = BeamGroup::new(&p);
    // best = -0.1 / 1; live beam -3.0 can reach at most -3.0 / 10 = -0.3 < -0.1
    group.advance(&[choice(0, 50256, -0.1), choice(0, 5, -3.0)], &p, ScoreWidth::F64);
    assert!(group.is_finished());
}

#[test]
fn negative_length_penalty_bounds_at_the_next_length() {
    let p = params(2, 10, -1.0);
    let mut group = BeamGroup::new(&p);
    // best = -1.0 * 1 = -1.0; live -0.4 reaches at best -0.4 * 2 = -0.8 > -1.0: keep going.
    group.advance(&[choice(0, 5, -0.4), choice(0, 50256, -1.0)], &p, ScoreWidth::F64);
    assert!(!group.is_finished());
    // Next step: live beam -0.6 at length 2 reaches at best -0.6 * 3 = -1.8 < -1.0: done.
    group.advance(&[choice(0, 6, -0.6), choice(1, 9, f64::NEG_INFINITY)], &p, ScoreWidth::F64);
    assert!(group.is_finished());
}

#[test]
fn last_step_offers_live_beams_in_row_order_and_ties_keep_the_first() {
    let p = params(2, 1, 1.0);
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, 11, -1.0), choice(0, 12, -1.0)], &p, ScoreWidth::F64);
    assert!(group.is_finished());
    assert_eq!(group.prediction(1), vec![11]);
}

#[test]
fn equal_later_candidate_does_not_replace() {
    let p = params(2, 4, 0.0);
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, 50256, -1.0), choice(0, 3, -0.5)], &p, ScoreWidth::F64);
    group.advance(&[choice(1, 50256, -1.0), choice(1, 4, -2.0)], &p, ScoreWidth::F64);
    assert_eq!(group.prediction(4), vec![50256, 0, 0, 0]);
}
