//! What a shape error means when the shape came from `--model_card`: the checkpoint is another
//! GPT-2 size, so the error says which shape it found and what to pass instead.

use super::{Gpt2Config, ModelCard, ModelError};

const CARDS: [(ModelCard, &str); 3] =
    [(ModelCard::Small, "gpt2.sm"), (ModelCard::Medium, "gpt2.md"), (ModelCard::Large, "gpt2.lg")];

fn card_name(card: ModelCard) -> &'static str {
    CARDS.iter().find(|(c, _)| *c == card).map_or("?", |(_, name)| name)
}

/// The checkpoint's shape as one mismatching tensor shows it.
fn found_shape(name: &str, found: &[i64]) -> Option<(String, Option<i64>)> {
    match (name, found) {
        ("wte.weight", [vocab, embd]) => Some((format!("vocab_size {vocab}, n_embd {embd}"), Some(*embd))),
        ("wpe.weight", [positions, embd]) => Some((format!("n_positions {positions}, n_embd {embd}"), Some(*embd))),
        (_, [embd]) if name.contains("ln_") => Some((format!("n_embd {embd}"), Some(*embd))),
        _ => None,
    }
}

/// `err`, explained when the model's shape came from `card` and the checkpoint has another.
pub fn explain_card_mismatch(err: ModelError, card: ModelCard) -> ModelError {
    let config = Gpt2Config::from_card(card);
    let card = card_name(card);
    let ours = format!("{card} is n_embd {}, {} layers", config.n_embd, config.n_layer);
    let hint = match &err {
        ModelError::ShapeMismatch { name, found, .. } => {
            let Some((shape, embd)) = found_shape(name, found) else {
                return err;
            };
            let other_card = CARDS.iter().find(|(c, _)| Some(Gpt2Config::from_card(*c).n_embd as i64) == embd);
            let instead = match other_card {
                Some((_, other)) => format!("--model_card {other}, or --model_config"),
                None => "--model_config".to_string(),
            };
            format!(
                "the checkpoint is not --model_card {card} ({ours}): it has {shape}; pass {instead} with the \
                 checkpoint's config.json (n_embd, n_layer, n_head, vocab_size, n_positions)"
            )
        }
        ModelError::MissingTensor { name, .. } if name.starts_with("h.") => format!(
            "the checkpoint may have fewer layers than --model_card {card} ({ours}); pass --model_config with \
             the checkpoint's config.json (n_embd, n_layer, n_head, vocab_size, n_positions)"
        ),
        _ => return err,
    };
    ModelError::WrongShape { error: Box::new(err), hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_checkpoint_under_the_medium_card_suggests_the_small_card_and_model_config() {
        let err = ModelError::ShapeMismatch {
            name: "wte.weight".into(),
            path: "m.pt".into(),
            expected: vec![50257, 1024],
            found: vec![50257, 768],
        };
        let text = explain_card_mismatch(err, ModelCard::Medium).to_string();
        assert!(text.contains("it has vocab_size 50257, n_embd 768"), "{text}");
        assert!(text.contains("pass --model_card gpt2.sm, or --model_config"), "{text}");
    }

    #[test]
    fn a_shape_no_card_has_suggests_model_config_alone() {
        let err = ModelError::ShapeMismatch {
            name: "wte.weight".into(),
            path: "m.pt".into(),
            expected: vec![50257, 768],
            found: vec![1000, 32],
        };
        let text = explain_card_mismatch(err, ModelCard::Small).to_string();
        assert!(text.contains("vocab_size 1000, n_embd 32; pass --model_config with"), "{text}");
    }
}
