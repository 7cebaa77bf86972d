#!/usr/bin/env bash
# The GPU check, in two halves.
#
#   scripts/gpu-check.sh stage [DIR]    # here: build and stage what must travel (default target/gpu-check)
#   DIR/gpu-check.sh run [options]      # there: an NVIDIA GPU, python3 with torch 2.11.0+cu130,
#                                       # no Rust toolchain, no internet
#
# `stage` builds the release `lorabeam`, strips it (about 7 MB: libtorch is not in it) and copies it
# with this script, the tiny fixture, the goldens and the E2E data into DIR. `run` finds libtorch
# in python3's torch/lib, then prints in one pass (under 8 minutes on an H200):
#   1. device facts (nvidia-smi, torch, the device's name, multiprocessors and memory);
#   2. every golden on the device in f64 and f32, with its match rate;
#   3. a GPT-2 M-shaped random GPT-2 + LoRA (r=4) over the whole e2e_test.jsonl in bf16 and f32
#      (README configuration): engine seconds, items/s, tokens/s, and the model's FLOP/s as a
#      share of the bf16 matmul peak measured in the same run with torch;
#   4. the peak GPU memory seen by nvidia-smi while lorabeam ran.
#
# Options of `run`: --device D (default cuda; `cpu` checks the script's logic without a GPU),
# --shape "N_EMBD N_LAYER N_HEAD N_POSITIONS" (default GPT-2 M, "1024 24 16 1024"),
# --lines N (E2E lines, default all), --dtypes "bf16 f32", --goldens "readme-f64 ...".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
shift || true

stage() {
  local repo out
  repo=$(cd "$here/.." && pwd)
  out=${1:-$repo/target/gpu-check}
  cd "$repo"
  # shellcheck source=/dev/null
  source scripts/env.sh
  cargo build --release -p lorabeam --bin lorabeam
  rm -rf "$out" && mkdir -p "$out/conformance/data"
  strip -o "$out/lorabeam" target/release/lorabeam
  cp scripts/gpu-check.sh "$out/gpu-check.sh"
  cp -r tests/conformance/fixture-tiny tests/conformance/golden "$out/conformance/"
  cp tests/conformance/data/e2e_test_public.jsonl tests/conformance/data/e2e_test.jsonl "$out/conformance/data/"
  du -sh "$out" "$out/lorabeam"
  echo "staged in $out; there: $out/gpu-check.sh run"
}

# gpt2_beam.py's flags of each golden (tests/conformance/README.md), without --dtype.
golden_flags() {
  case $1 in
    readme-f64 | readme-f32) echo "--beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 --repetition_penalty 1.0 --eos_token_id 628 --eval_len 64 --seq_len 256 --batch_size 1" ;;
    knobs-f64) echo "--beam 4 --length_penalty 1.0 --no_repeat_ngram_size 3 --repetition_penalty 1.3 --min_length 8 --eval_len 40 --seq_len 256 --batch_size 3" ;;
    greedy-f64) echo "--beam 1 --no_repeat_ngram_size 0 --eval_len 32 --seq_len 256 --batch_size 4" ;;
    truncate-f64) echo "--beam 5 --length_penalty 0.6 --no_repeat_ngram_size 4 --eos_token_id 628 --eval_len 32 --seq_len 64 --batch_size 2" ;;
    *) echo "unknown golden $1" >&2; return 1 ;;
  esac
}

# Polls nvidia-smi's memory.used (MiB) into $1 until killed.
poll_memory() {
  while nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >>"$1" 2>/dev/null; do sleep 0.2; done
}

run() {
  local device=cuda shape="1024 24 16 1024" lines= dtypes="bf16 f32"
  local goldens="readme-f64 readme-f32 knobs-f64 greedy-f64 truncate-f64"
  while (($#)); do
    case $1 in
      --device) device=$2 ;; --shape) shape=$2 ;; --lines) lines=$2 ;; --dtypes) dtypes=$2 ;;
      --goldens) goldens=$2 ;; *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
    shift 2
  done
  local started=$SECONDS conf=$here/conformance work=${GPU_CHECK_WORK:-$(mktemp -d)}
  local torch_lib
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  local bin=$here/lorabeam
  echo "== device facts"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  python3 - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    print(f"{p.name}: compute capability {p.major}.{p.minor}, {p.multi_processor_count} multiprocessors, "
          f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
EOF
  "$bin" --version

  echo "== bf16 matmul peak (torch, 8192^3, best of 10 after 3 warm-ups)"
  local peak=0
  if [ "$device" != cpu ]; then
    peak=$(python3 - <<'EOF'
import torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    a @ b
torch.cuda.synchronize()
best = 0.0
for _ in range(10):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); a @ b; e.record(); torch.cuda.synchronize()
    best = max(best, 2 * 8192**3 / (s.elapsed_time(e) / 1e3))
print(best)
EOF
)
    python3 -c "print(f'bf16 matmul peak: {$peak / 1e12:.0f} TFLOP/s')"
  else
    echo "skipped on the CPU"
  fi

  local mem_log=$work/memory.log poller=
  : >"$mem_log"
  if command -v nvidia-smi >/dev/null && [ "$device" != cpu ]; then
    poll_memory "$mem_log" & poller=$!
  fi

  echo "== goldens on --device $device (tiny fixture, public 126 lines)"
  local g dtype
  for g in $goldens; do
    for dtype in f64 f32; do
      # shellcheck disable=SC2046
      "$bin" run --data "$conf/data/e2e_test_public.jsonl" --init_checkpoint "$conf/fixture-tiny/lora_full.pt" \
        --model_config "$conf/fixture-tiny/config.json" --lora_dim 4 --lora_alpha 32 $(golden_flags "$g") \
        --dtype "$dtype" --device "$device" --work_dir "$work/$g-$dtype" --output_file p.jsonl 2>"$work/$g-$dtype.log" \
        || { echo "$g $dtype: FAILED"; tail -n 5 "$work/$g-$dtype.log"; continue; }
      printf '%-13s %-4s %s   (%s)\n' "$g" "$dtype" \
        "$("$bin" compare "$conf/golden/$g.jsonl" "$work/$g-$dtype/p.jsonl" --min-rate 0 | tail -n 1)" \
        "$(grep -o 'in [0-9.]*s' "$work/$g-$dtype.log" | head -n 1)"
    done
  done

  local n_embd n_layer n_head n_positions data=$conf/data/e2e_test.jsonl
  read -r n_embd n_layer n_head n_positions <<<"$shape"
  echo "== random GPT-2 ($n_embd/$n_layer/$n_head) + LoRA r=4 on e2e_test.jsonl${lines:+ (first $lines lines)}, README configuration"
  if [ -n "$lines" ]; then head -n "$lines" "$data" >"$work/e2e.jsonl"; data=$work/e2e.jsonl; fi
  "$bin" fixture --out "$work/model" --n_embd "$n_embd" --n_layer "$n_layer" --n_head "$n_head" \
    --n_positions "$n_positions" --lines 1 >/dev/null 2>&1
  for dtype in $dtypes; do
    "$bin" run --data "$data" --init_checkpoint "$work/model/lora_full.pt" --model_config "$work/model/config.json" \
      --lora_dim 4 --lora_alpha 32 --beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 \
      --repetition_penalty 1.0 --eos_token_id 628 --eval_len 64 --seq_len 512 --batch_size 10 \
      --dtype "$dtype" --device "$device" --work_dir "$work/e2e-$dtype" --output_file p.jsonl 2>"$work/e2e-$dtype.log" \
      || { echo "e2e $dtype: FAILED"; tail -n 5 "$work/e2e-$dtype.log"; continue; }
    python3 - "$work/e2e-$dtype.log" "$dtype" "$peak" <<'EOF'
import re, sys
log, dtype, peak = open(sys.argv[1]).read(), sys.argv[2], float(sys.argv[3])
m = re.search(r"decoded (\d+) lines.*?\((\d+) distinct contexts\) in ([0-9.]+)s .*?(\d+) generated tokens.*?([0-9.]+) TFLOP", log)
batch = re.search(r"batch: (.*)", log)
if not m:
    print(f"{dtype}: could not read the summary:\n{log[-800:]}")
    sys.exit(0)
lines, items, secs, tokens, tflop = int(m[1]), int(m[2]), float(m[3]), int(m[4]), float(m[5])
share = f", {100 * tflop * 1e12 / secs / peak:.1f}% of the bf16 matmul peak" if peak > 0 else ""
print(f"{dtype}: engine {secs:.2f}s, {items / secs:.1f} items/s, {lines / secs:.1f} lines/s, "
      f"{tokens / secs:.0f} tokens/s, {tflop:.1f} TFLOP at {tflop / secs:.1f} TFLOP/s{share}")
print(f"      {batch[1] if batch else ''}")
EOF
  done

  if [ -n "$poller" ]; then kill "$poller" 2>/dev/null || true; fi
  echo "== peak GPU memory (nvidia-smi memory.used while lorabeam ran)"
  if [ -s "$mem_log" ]; then sort -n "$mem_log" | tail -n 1 | sed 's/$/ MiB/'; else echo "not measured"; fi
  echo "== done in $((SECONDS - started)) s; logs in $work"
}

case $mode in
  stage) stage "$@" ;;
  run) run "$@" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
