#!/usr/bin/env bash
# The main job on an embedded default: make a small seeded GPT-2 + LoRA checkpoint in
# gpt2_ft.py's format, then decode its sample data with the README's beam settings.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
out=target/demo
./target/release/lorabeam fixture --out "$out"
./target/release/lorabeam run \
  --data "$out/sample.jsonl" --init_checkpoint "$out/lora_full.pt" --model_config "$out/config.json" \
  --lora_dim 4 --lora_alpha 32 --beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 \
  --repetition_penalty 1.0 --eos_token_id 628 --eval_len 64 --seq_len 256 --batch_size 16 \
  --work_dir "$out" --output_file predictions.jsonl "$@"
head -n 3 "$out/predictions.jsonl" | cut -c1-160
