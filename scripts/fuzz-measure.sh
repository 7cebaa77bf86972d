#!/usr/bin/env bash
# How long a fuzz target takes to find a crash, from its seeds alone:
#   scripts/fuzz-measure.sh TARGET SEED SECONDS [OUT]
# Runs the built target (scripts/fuzz.sh --build) as scripts/fuzz.sh does, with -seed=SEED,
# until its first crash or for SECONDS, in OUT (default /tmp/lorabeam-fuzz-measure/
# TARGET-SEED, emptied first; the seeds alone as corpus), and prints one line: the target,
# the seed, the crash's kind, the seconds from the start to it, the load average, the input.
# Kinds: stack-overflow, one-allocation (one allocation over the cap: a size a header
# claims), live-memory (over the live cap: an amplification), rss, timeout, panic, other.
# libFuzzer stops at the first crash: to time another kind while a stack overflow is still
# in the code, give the parsing thread a stack nothing overflows: LORABEAM_FUZZ_STACK_KB=1048576;
# to time only allocations that fail for real (over the machine's memory), raise the caps on
# one allocation and on the live total (fuzz/src/guard.rs): LORABEAM_FUZZ_ALLOC_CAP_MB=65536.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/fuzz-options.sh
target=$1 seed=$2 seconds=$3
out=${4:-/tmp/lorabeam-fuzz-measure/$target-$seed}
bin=${LORABEAM_FUZZ_TARGET_DIR:-$LORABEAM_CACHE/fuzz-target}/x86_64-unknown-linux-gnu/release/$target
[ -x "$bin" ] || { echo "fuzz-measure: $bin is not built (scripts/fuzz.sh --build)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/corpus" "$out/artifacts"
LORABEAM_FUZZ_WRITE_SEEDS="$out/corpus" "$bin" 2>/dev/null
# The byte-level checkpoint reader also gets the conformance fixtures, as in scripts/fuzz.sh.
[ "$target" = checkpoint_reader ] && cp tests/conformance/fixture-tiny/lora_only.pt "$out/corpus/"
start=$(date +%s.%N)
"$bin" "$out/corpus" -seed="$seed" -max_total_time="$seconds" -artifact_prefix="$out/artifacts/" \
  $(fuzz_options "$target") >"$out/log" 2>&1 || true
input=$(ls "$out"/artifacts/* 2>/dev/null | head -n 1)
if [ -z "$input" ]; then
  echo "$target seed=$seed none ${seconds}s load=$(cut -d' ' -f1 /proc/loadavg)"
  exit 0
fi
log=$(cat "$out/log")
case $log in
*"fuzz: stack overflow"*) kind=stack-overflow ;;
*"fuzz: allocation refused: one allocation"*) kind=one-allocation ;;
*"fuzz: allocation refused:"*"live"*) kind=live-memory ;;
*"out-of-memory"*) kind=rss ;;
*"ERROR: libFuzzer: timeout"*) kind=timeout ;;
*"panicked at"*) kind=panic ;;
*) kind=other ;;
esac
t=$(awk -v m="$(stat -c %.3Y "$input")" -v s="$start" 'BEGIN { printf "%.0f", m - s }')
[ "$kind" = panic ] && kind+="($(grep -A1 -m1 'panicked at' "$out/log" | tail -n 1 | tr ' ' _))"
[ "$kind" = one-allocation ] && kind+="($(grep -o -m1 'one allocation of [0-9]* bytes' "$out/log" | cut -d' ' -f4))"
echo "$target seed=$seed $kind ${t}s load=$(cut -d' ' -f1 /proc/loadavg) $input"
