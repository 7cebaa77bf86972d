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

fn params_with(beam: usize, eval_len: usize, change: impl FnOnce(&mut DecodeParams)) -> ValidDecodeParams {
    let mut p = DecodeParams { beam, eval_len, seq_len: 64, no_repeat_ngram_size: 0, ..Default::default() };
    change(&mut p);
    p.validate(ModelLimits { vocab_size: 50257, n_positions: 64 }).expect("valid")
}

const EOS: u32 = 50256;

/// Feeds `steps` (one top-k result each) until the group is finished; returns the steps taken.
fn run(group: &mut BeamGroup, steps: &[[Choice; 2]], p: &ValidDecodeParams, width: ScoreWidth) -> usize {
    for (taken, choices) in steps.iter().enumerate() {
        if group.is_finished() {
            return taken;
        }
        group.advance(choices, p, width);
    }
    steps.len()
}

#[test]
fn children_take_their_parents_history_scores_and_ngrams() {
    let p = params_with(2, 8, |p| p.no_repeat_ngram_size = 2);
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, 10, -1.0), choice(0, 20, -2.0)], &p, ScoreWidth::F64);
    group.advance(&[choice(1, 10, -2.5), choice(0, 20, -3.0)], &p, ScoreWidth::F64);
    group.advance(&[choice(0, 20, -3.5), choice(1, 10, -4.0)], &p, ScoreWidth::F64);
    // Beam 0 is 20 10 20, beam 1 is 10 20 10.
    assert_eq!(group.len(), 3);
    assert_eq!(group.last_tokens().collect::<Vec<_>>(), vec![20, 10]);
    assert_eq!(group.scores().collect::<Vec<_>>(), vec![-3.5, -4.0]);
    assert_eq!(group.distinct_tokens(0), &[20, 10]);
    assert_eq!(group.distinct_tokens(1), &[10, 20]);
    let banned = |beam| {
        let mut out = Vec::new();
        group.banned_into(beam, &p, &mut out);
        out
    };
    // Each beam's bigrams are its own history's: 20 was followed by 10, and 10 by 20.
    assert_eq!(banned(0), vec![10]);
    assert_eq!(banned(1), vec![20]);
}

#[test]
fn eos_ids_are_banned_while_shorter_than_min_length() {
    let p = params_with(1, 8, |p| (p.min_length, p.extra_eos_token_ids) = (2, vec![628]));
    let mut group = BeamGroup::new(&p);
    for (len, expected) in [(0, vec![EOS, 628]), (1, vec![EOS, 628]), (2, vec![]), (3, vec![])] {
        assert_eq!(group.len(), len);
        let mut banned = Vec::new();
        group.banned_into(0, &p, &mut banned);
        assert_eq!(banned, expected, "after {len} tokens");
        group.advance(&[choice(0, 30 + len as u32, -1.0)], &p, ScoreWidth::F64);
    }
}

/// Every EOS id ends a beam; candidates of one step are offered in row order and a tie keeps
/// the first.
#[test]
fn eos_candidates_of_one_step_are_offered_in_row_order() {
    let p = params_with(2, 4, |p| p.extra_eos_token_ids = vec![628]);
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, EOS, -1.0), choice(0, 628, -1.0)], &p, ScoreWidth::F64);
    assert_eq!(group.scores().collect::<Vec<_>>(), vec![f64::NEG_INFINITY; 2]);
    assert!(group.is_finished(), "no live beam is left");
    assert_eq!(group.prediction(4), vec![EOS, 0, 0, 0]);
}

/// With no candidate yet nothing can be final before `eval_len`, however low the scores.
#[test]
fn without_a_candidate_the_group_runs_to_eval_len() {
    let p = params_with(1, 3, |_| ());
    let mut group = BeamGroup::new(&p);
    for (step, token) in [5, 6, 7].into_iter().enumerate() {
        assert!(!group.is_finished(), "finished after {step} tokens");
        group.advance(&[choice(0, token, -1e6 * (step + 1) as f64)], &p, ScoreWidth::F64);
    }
    assert!(group.is_finished());
    assert_eq!(group.prediction(3), vec![5, 6, 7]);
}

/// With `lp > 0` the bound is taken at `eval_len`, where a long hypothesis's score is
/// divided the most: best -0.25 at length 1, live -2.0 could still reach -2.0 / 10 = -0.2.
#[test]
fn positive_length_penalty_bounds_at_eval_len() {
    let p = params_with(2, 10, |_| ());
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, EOS, -0.25), choice(0, 5, -2.0)], &p, ScoreWidth::F64);
    assert!(!group.is_finished());
    // At length 2, live -2.4 reaches at most -0.24 > -0.25; at length 3, -2.6 reaches -0.26.
    group.advance(&[choice(1, 6, -2.4), choice(1, 7, -9.0)], &p, ScoreWidth::F64);
    assert!(!group.is_finished());
    group.advance(&[choice(0, 8, -2.6), choice(1, 9, -9.5)], &p, ScoreWidth::F64);
    assert!(group.is_finished());
    assert_eq!(group.prediction(10), [EOS, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/// Only a strictly better score replaces the best, so a live beam that can at most tie it is
/// done: best -0.5, live -1.0 at length 1 reaches at most -1.0 / 2 = -0.5.
#[test]
fn a_live_beam_that_can_only_tie_the_best_is_done() {
    let p = params_with(2, 2, |_| ());
    let mut group = BeamGroup::new(&p);
    group.advance(&[choice(0, EOS, -0.5), choice(0, 5, -1.0)], &p, ScoreWidth::F64);
    assert!(group.is_finished());
}

/// The length penalty decides between a short and a long hypothesis: -2.0 at length 1
/// against -6.0 at length 4 (-1.5 normalised with `lp` 1, -6.0 with `lp` 0).
#[test]
fn length_penalty_normalises_candidates_before_comparing() {
    let steps = [
        [choice(0, 7, -1.0), choice(0, EOS, -2.0)],
        [choice(0, 8, -1.5), choice(0, 9, -9.0)],
        [choice(0, 10, -3.0), choice(1, 11, -9.5)],
        [choice(0, EOS, -6.0), choice(1, 12, -10.0)],
        [choice(1, 13, -10.5), choice(1, 14, -11.0)],
    ];
    for (lp, expected) in [(1.0, vec![7, 8, 10, EOS, 0, 0]), (0.0, vec![EOS, 0, 0, 0, 0, 0])] {
        let p = params_with(2, 6, |p| p.length_penalty = lp);
        let mut group = BeamGroup::new(&p);
        run(&mut group, &steps, &p, ScoreWidth::F64);
        assert!(group.is_finished(), "lp {lp}");
        assert_eq!(group.prediction(6), expected, "lp {lp}");
    }
}

/// Candidates compare in the width scores live in: -1.9999999999 / 2 beats -1.0 in f64 but
/// rounds to it in f32, where the earlier candidate stays.
#[test]
fn candidates_compare_in_the_score_width() {
    let p = params_with(2, 6, |_| ());
    let steps = [[choice(0, 5, -0.5), choice(0, EOS, -1.0)], [choice(0, EOS, -1.999_999_999_9), choice(0, 6, -9.0)]];
    for (width, expected) in [(ScoreWidth::F64, vec![5, EOS, 0, 0, 0, 0]), (ScoreWidth::F32, vec![EOS, 0, 0, 0, 0, 0])]
    {
        let mut group = BeamGroup::new(&p);
        run(&mut group, &steps, &p, width);
        assert_eq!(group.prediction(6), expected, "{width:?}");
    }
}
