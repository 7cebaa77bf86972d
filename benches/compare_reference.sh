#!/usr/bin/env bash
# Side-by-side run of gpt2_beam.py and `lorabeam run` on the same checkpoint, data, decoding
# flags and --threads, one program at a time. Prints both items/s, their ratio and
# `lorabeam compare`'s verdict.
#
# The reference is not part of this repository. LORABEAM_REFERENCE_RUNNER names a script that
# runs microsoft/LoRA's own beam() on the CPU, taking gpt2_beam.py's flags plus
# --n_embd --n_layer --n_head --n_positions --dtype --limit --threads --out, and printing a JSON
# line with "items_per_s" last.
#
#   LORABEAM_REFERENCE_RUNNER=/path/to/run_reference.py LORA_NLG_SRC=/path/to/LoRA/examples/NLG/src \
#   benches/compare_reference.sh \
#     --checkpoint CKPT --shape "768 12 12 1024" --data FILE [--lines N] [--ref-lines M] \
#     [--dtype f32|f64] [--threads T] [--seq-len S] [--batch-size B] [--out DIR]
#
# lorabeam runs with its default batch budgets (no --max_rows), so the ratio is like for like with
# the command a user would type.
#
# The reference pads every context to seq_len and always runs eval_len steps, so its cost per
# line does not depend on the content: --ref-lines M times it on the first M lines only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
: "${LORABEAM_REFERENCE_RUNNER:?set LORABEAM_REFERENCE_RUNNER to a runner of the beam() of gpt2_beam.py (see the header)}"

checkpoint= shape="64 2 4 256" data= lines=50 ref_lines= dtype=f32 threads=2 seq_len=256 batch=1 out=target/compare
while (($#)); do
  case $1 in
    --checkpoint) checkpoint=$2 ;; --shape) shape=$2 ;; --data) data=$2 ;; --lines) lines=$2 ;;
    --ref-lines) ref_lines=$2 ;; --dtype) dtype=$2 ;; --threads) threads=$2 ;; --seq-len) seq_len=$2 ;;
    --batch-size) batch=$2 ;; --out) out=$2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
read -r n_embd n_layer n_head n_positions <<<"$shape"
ref_lines=${ref_lines:-$lines}
mkdir -p "$out"
head -n "$lines" "$data" >"$out/input.jsonl"
decode=(--beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 --repetition_penalty 1.0 --eos_token_id 628
        --eval_len 64 --seq_len "$seq_len" --batch_size "$batch")

ref_json=$(python "$LORABEAM_REFERENCE_RUNNER" --data "$out/input.jsonl" --limit "$ref_lines" \
  --init_checkpoint "$checkpoint" --n_embd "$n_embd" --n_layer "$n_layer" --n_head "$n_head" \
  --n_positions "$n_positions" --lora_dim 4 --lora_alpha 32 "${decode[@]}" --dtype "$dtype" \
  --threads "$threads" --out "$out/reference.jsonl" | tail -n 1)
ref_rate=$(python -c 'import json,sys; print(json.loads(sys.argv[1])["items_per_s"])' "$ref_json")

printf '{"n_embd":%s,"n_layer":%s,"n_head":%s,"n_positions":%s,"vocab_size":50257}\n' \
  "$n_embd" "$n_layer" "$n_head" "$n_positions" >"$out/config.json"
start=$(date +%s.%N)
target/release/lorabeam run --data "$out/input.jsonl" --init_checkpoint "$checkpoint" \
  --model_config "$out/config.json" --lora_dim 4 --lora_alpha 32 "${decode[@]}" --dtype "$dtype" \
  --device cpu --threads "$threads" --work_dir "$out" --output_file lorabeam.jsonl
end=$(date +%s.%N)
ours_rate=$(python -c "print(round($lines / ($end - $start), 4))")

echo "reference: $ref_lines lines, $ref_rate items/s   ($ref_json)"
echo "lorabeam:  $lines lines, $ours_rate items/s (wall time of the whole command, model loading included)"
python -c "print(f'ratio: {$ours_rate / $ref_rate:.1f}x  (threads {$threads}, dtype $dtype)')"
head -n "$ref_lines" "$out/lorabeam.jsonl" >"$out/lorabeam_head.jsonl"
target/release/lorabeam compare "$out/reference.jsonl" "$out/lorabeam_head.jsonl" --min-rate 0 | tail -n 1
