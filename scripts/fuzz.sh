#!/usr/bin/env bash
# Fuzzes the checkpoint reader (zip + pickle + tensor storages) and the JSONL record parser
# with cargo fuzz (libFuzzer, nightly), SECONDS per target (default 60), or only builds them:
#   scripts/fuzz.sh [SECONDS]
#   scripts/fuzz.sh --build
# Seeds come from the conformance fixtures; corpora and crashes stay under fuzz/ (ignored by
# git). Runs without a sanitizer: the project forbids unsafe code, so what the fuzzer hunts is
# panics, hangs and runaway allocations, which libFuzzer catches on its own.
#
# The nightly build (every dependency of lorabeam-worker, libtorch's C++ wrapper included, with
# coverage instrumentation: about 10 minutes of this 2-core machine from nothing) goes to
# $LORABEAM_FUZZ_TARGET_DIR, by default in the per-user cache beside the venv and the tools, so
# a fresh clone rebuilds only the workspace's crates.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
build_only=false
[ "${1:-}" = --build ] && build_only=true && shift
seconds=${1:-60}
conformance=${LORABEAM_CONFORMANCE_DIR:-tests/conformance}
target_dir=${LORABEAM_FUZZ_TARGET_DIR:-$LORABEAM_CACHE/fuzz-target}

# cargo fuzz needs a nightly toolchain. Where none is installed and none can be fetched, say
# so and exit 3, which the test command reports as a skip rather than a pass.
if ! rustup toolchain list | grep -q '^nightly' && ! rustup toolchain install nightly --profile minimal; then
  echo "fuzz: SKIPPED: no nightly Rust toolchain here, and none could be installed" >&2
  exit 3
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mkdir -p fuzz/corpus/checkpoint_reader fuzz/corpus/jsonl_records
cp -n "$conformance"/fixture-tiny/lora_only.pt fuzz/corpus/checkpoint_reader/ 2>/dev/null || true
head -c 4096 "$conformance"/fixture-tiny/lora_full.pt > fuzz/corpus/checkpoint_reader/lora_full_head.pt
head -n 3 "$conformance"/data/e2e_test_public.jsonl > fuzz/corpus/jsonl_records/e2e_head.jsonl

started=$(date +%s)
cargo +nightly fuzz build --sanitizer none --target-dir "$target_dir"
echo "fuzz: built in $(($(date +%s) - started)) s"
$build_only && exit 0
# The targets run at once, one process each (the test machine has two cores): SECONDS of wall
# time for both rather than one after the other.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for target in checkpoint_reader jsonl_records; do
  echo "fuzz: $target for ${seconds}s"
  (cargo +nightly fuzz run --sanitizer none --target-dir "$target_dir" "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 >"$logs/$target.log" 2>&1) &
  pids+=($!)
done
failed=0
for i in 0 1; do
  target=$([ "$i" = 0 ] && echo checkpoint_reader || echo jsonl_records)
  rc=0
  wait "${pids[$i]}" || rc=$?
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)|panicked|ERROR|SUMMARY' "$logs/$target.log" | sed "s/^/$target: /" || true
  if ((rc)); then
    tail -n 30 "$logs/$target.log" >&2
    echo "fuzz: $target failed (exit $rc); crash inputs are in fuzz/artifacts/$target" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
echo "fuzz: no crashes"
