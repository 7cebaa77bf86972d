#!/usr/bin/env bash
# Fuzzes the checkpoint reader, the JSONL record parser and the PEFT config check with cargo fuzz (libFuzzer, nightly), or only builds the targets:
#   scripts/fuzz.sh             every target for its own budget (below), two at a time
#   scripts/fuzz.sh SECONDS     every target for SECONDS instead
#   scripts/fuzz.sh --build
# Exit status: 0 no crash, 1 a crash (its input is in fuzz/artifacts/TARGET/), 3 no nightly.
#
# Targets (fuzz/fuzz_targets; shared code in fuzz/src):
#   pickle_stream      opcode programs with Repeat blocks, as a torch.save zip or legacy stream
#   torch_zip          zip archives written field by field, any size, CRC or offset a lie
#   checkpoint_reader  the same reader on raw bytes, from real checkpoint files
#   jsonl_records      the JSONL record parser on raw bytes
#   peft_config        adapter_config.json built from fields, through check_peft_config
# Each input is parsed on a 2 MiB thread, the stack the worker loads on, with a handler that
# makes a stack overflow a reported crash; one Rust allocation over 256 MiB or 1 GiB live is a
# crash too (fuzz/src/guard.rs). libFuzzer's limits are in scripts/fuzz-options.sh.
#
# Budgets: about three times the longest each target took to find the crashes a hostile probe
# had found in the readers (measured from the seeds alone on the 2-core test machine, with a
# load average of 5-9 from other builds; scripts/fuzz-measure.sh, README "Fuzzing"):
#   pickle_stream      420 s  (deep nesting, a stack overflow: 1-64 s; memo values deep-copied,
#                             1 GiB live or a 10 s input: 5-139 s)
#   torch_zip          120 s  (Vec::with_capacity of a zip64 size: 0-1 s)
#   checkpoint_reader   60 s  (the same from a 32-bit size over the 256 MiB cap: 4-7 s)
#   jsonl_records       60 s
#   peft_config        180 s  (no known crash: the old check read a 1 GiB config whole, which
#                             bytes in memory cannot show; a budget for regexes and numbers)
# Two run at once (the test machine has two cores), the longest first: pickle_stream beside
# the four others in turn, about 7 minutes of wall time in all. Seeds are written by the
# targets themselves (LORABEAM_FUZZ_WRITE_SEEDS), plus the conformance fixtures for the
# byte-level ones; corpora and crashes stay under fuzz/ (ignored by git). No sanitizer: the
# project's code has no unsafe, so what the fuzzer hunts is panics, stack overflows, hangs and
# runaway allocations.
#
# The nightly build (every dependency of lorabeam-worker, libtorch's C++ wrapper included, with
# coverage instrumentation: about 10 minutes of this 2-core machine from nothing) goes to
# $LORABEAM_FUZZ_TARGET_DIR, by default in the per-user cache beside the venv and the tools, so
# a fresh clone rebuilds only the workspace's crates.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/fuzz-options.sh
build_only=false
[ "${1:-}" = --build ] && build_only=true && shift
seconds=${1:-}
conformance=${LORABEAM_CONFORMANCE_DIR:-tests/conformance}
target_dir=${LORABEAM_FUZZ_TARGET_DIR:-$LORABEAM_CACHE/fuzz-target}
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release

# Target and budget in seconds, longest first (the order they start in).
targets=(pickle_stream:420 peft_config:180 torch_zip:120 checkpoint_reader:60 jsonl_records:60)

# cargo fuzz needs a nightly toolchain. Where none is installed and none can be fetched, say
# so and exit 3, which the test command reports as a skip rather than a pass.
if ! rustup toolchain list | grep -q '^nightly' && ! rustup toolchain install nightly --profile minimal; then
  echo "fuzz: SKIPPED: no nightly Rust toolchain here, and none could be installed" >&2
  exit 3
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

started=$(date +%s)
cargo +nightly fuzz build --sanitizer none --target-dir "$target_dir"
echo "fuzz: built in $(($(date +%s) - started)) s"
$build_only && exit 0
work_log=$(mktemp)

# First the inputs that crashed these targets before the readers were bounded (issue 24:
# fuzz/regressions/TARGET/, named by what they did), each run once: a failure is a regression.
for dir in fuzz/regressions/*/; do
  target=$(basename "$dir")
  if ! "$bin_dir/$target" $(fuzz_options "$target") "$dir"* >"$work_log" 2>&1; then
    tail -n 30 "$work_log" >&2
    echo "fuzz: a regression input of $target crashes again (fuzz/regressions/$target)" >&2
    exit 1
  fi
  echo "fuzz: $target replays its $(ls "$dir" | wc -l) regression inputs"
done

for entry in "${targets[@]}"; do
  target=${entry%%:*}
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  LORABEAM_FUZZ_WRITE_SEEDS="fuzz/corpus/$target" "$bin_dir/$target" 2>/dev/null
done
cp -n "$conformance"/fixture-tiny/lora_only.pt fuzz/corpus/checkpoint_reader/ 2>/dev/null || true
head -c 4096 "$conformance"/fixture-tiny/lora_full.pt >fuzz/corpus/checkpoint_reader/lora_full_head.pt
head -n 3 "$conformance"/data/e2e_test_public.jsonl >fuzz/corpus/jsonl_records/e2e_head.jsonl

logs=$(mktemp -d)
trap 'rm -rf "$logs" "$work_log"' EXIT
# Runs one target in the background; its exit status lands in $logs/TARGET.rc.
run() {
  local target=$1 budget=$2
  echo "fuzz: $target for ${budget}s"
  ( rc=0
    "$bin_dir/$target" "fuzz/corpus/$target" -artifact_prefix="fuzz/artifacts/$target/" \
      -max_total_time="$budget" -print_final_stats=1 $(fuzz_options "$target") >"$logs/$target.log" 2>&1 || rc=$?
    echo "$rc" >"$logs/$target.rc" ) &
}
failed=0
report() {
  local target=$1 rc
  rc=$(cat "$logs/$target.rc")
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)|^fuzz: |panicked|ERROR|SUMMARY' \
    "$logs/$target.log" | sed "s/^/$target: /" || true
  if ((rc)); then
    tail -n 30 "$logs/$target.log" >&2
    echo "fuzz: $target failed (exit $rc); crash inputs are in fuzz/artifacts/$target; replay one with" >&2
    echo "  $bin_dir/$target fuzz/artifacts/$target/<file>" >&2
    echo "and print a structured one with RUST_LIBFUZZER_DEBUG_PATH=/dev/stdout before that command." >&2
    failed=1
  fi
}
# Two at a time: start one whenever fewer than two run, report each as it ends.
running=()
for entry in "${targets[@]}"; do
  budget=${seconds:-${entry##*:}}
  run "${entry%%:*}" "$budget"
  running+=("${entry%%:*}")
  while ((${#running[@]} >= 2)); do
    wait -n || true
    still=()
    for target in "${running[@]}"; do
      if [ -f "$logs/$target.rc" ]; then report "$target"; else still+=("$target"); fi
    done
    running=("${still[@]}")
  done
done
wait
for target in "${running[@]}"; do report "$target"; done
((failed == 0)) || exit 1
echo "fuzz: no crashes"
