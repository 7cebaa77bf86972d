#!/usr/bin/env bash
# The main job on an embedded default: decode the public E2E test lines with the tiny GPT-2 +
# LoRA that microsoft/LoRA's own code trained (tests/conformance/fixture-tiny), with the LoRA
# README's beam settings; check the predictions against the reference's own output for the same
# model and flags (tests/conformance/golden/readme-f32.jsonl); show them as text and score them
# as gpt2_decode.py + measure_scores.py -p would.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
out=target/demo
fixture=tests/conformance/fixture-tiny
scores=$(./target/release/lorabeam run \
  --data tests/conformance/data/e2e_test_public.jsonl \
  --init_checkpoint "$fixture/lora_full.pt" --model_config "$fixture/config.json" \
  --lora_dim 4 --lora_alpha 32 --beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 \
  --repetition_penalty 1.0 --eos_token_id 628 --eval_len 64 --seq_len 256 --batch_size 1 \
  --work_dir "$out" --output_file predictions.jsonl --score "$@")
echo "against gpt2_beam.py's own predictions for this model and these flags:"
./target/release/lorabeam compare tests/conformance/golden/readme-f32.jsonl "$out/predictions.jsonl" --min-rate 0.99
echo "the first contexts' predictions as text ($out/e2e_pred.txt):"
head -n 3 "$out/e2e_pred.txt"
echo "$scores"
