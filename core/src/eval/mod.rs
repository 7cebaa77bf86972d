//! The E2E metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr) as e2e-metrics' measure_scores.py computes them.
