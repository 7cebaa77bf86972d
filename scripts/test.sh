#!/usr/bin/env bash
# Every test: unit, integration (conformance against tests/conformance, checkpoint layouts,
# loader and input errors, the fleet with real redis-server and processes on loopback, faults,
# traces and metrics), with real libtorch; then the Helm chart's lint, render and schema
# validation, and a short fuzzing run. Installs what it needs first. Arguments go to
# `cargo nextest run` (a filter, say: scripts/test.sh -E 'test(/^fleet::/)').
#
# The tests run under cargo-nextest, each in its own process, as .config/nextest.toml schedules
# them: tests that mostly wait overlap the CPU-bound ones, and fleets of real workers run one at
# a time. Each phase's seconds are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
results=$(mktemp)
phases=$(mktemp)
trap 'rm -f "$log" "$results" "$phases"' EXIT
export LORABEAM_PHASES=$phases
run_started=$(date +%s)
started=$run_started
phase() {
  local now
  now=$(date +%s)
  echo "$1 $((now - started))" >>"$phases"
  started=$now
}

# Packages, venv and cargo-nextest; then the binaries and every test target in one cargo build
# (one feature set). setup.sh records its two phases itself.
scripts/setup.sh --tests
source scripts/env.sh
started=$(date +%s)

# Fixtures made once for the run: the checkpoint layouts not committed, and the PEFT adapters.
# Tests find them up to date; run by hand, a test makes them itself (under a lock).
"$PYTHON_SYS_EXECUTABLE" tests/conformance/make_layouts.py target/conformance-layouts
"$PYTHON_SYS_EXECUTABLE" tests/conformance/make_peft_adapters.py random target/peft-adapters
"$PYTHON_SYS_EXECUTABLE" tests/conformance/make_peft_adapters.py from-loralib target/peft-adapters \
  tests/conformance/fixture-tiny/config.json tests/conformance/fixture-tiny/lora_only.pt 4 32
phase fixtures

# The fuzz targets' nightly build and the chart checks need nothing the tests build: they run
# beside the tests at the lowest CPU priority, on what the tests leave idle (tests that wait on
# processes, the last long test running alone), and report after them.
fuzz_build_log=$(mktemp) helm_log=$(mktemp)
nice -n 19 scripts/fuzz.sh --build >"$fuzz_build_log" 2>&1 &
fuzz_build=$!
nice -n 19 scripts/check-helm.sh >"$helm_log" 2>&1 &
helm=$!
# (Under set -e a failing command in the trap sets the exit status: the jobs are usually done.)
trap 'kill "$fuzz_build" "$helm" 2>/dev/null || true; rm -f "$log" "$results" "$phases" "$fuzz_build_log" "$helm_log"' EXIT

status=0
# setup.sh has just built every binary; the process tests use them as they are.
LORABEAM_BINARIES_BUILT=1 cargo nextest run --release --locked --workspace --no-fail-fast "$@" 2>&1 |
  tee "$log" || status=$?
# Result lines go to $results, in cargo's `test result:` form; the log itself is not counted
# (it holds a failing test's own output, `test result:` lines included).
# nextest ends with `Summary [ 501.2s] 123 tests run: 121 passed (3 slow), 2 failed, 1 skipped`:
# every test that ran and did not pass is a failure.
summary=$(grep -E '^ *Summary \[' "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  awk '{ for (i = 1; i <= NF; i++) { if ($i == "run:") run = $(i-2); if ($i ~ /^passed/) passed = $(i-1) } }
       END { printf "test result: %s. %d passed; %d failed; (nextest)\n", (run == passed ? "ok" : "FAILED"), passed, run - passed }' \
    <<<"$summary" >>"$results"
else
  echo "test result: FAILED. 0 passed; 1 failed; (cargo nextest ran no tests)" >>"$results"
  ((status)) || status=1
fi
# nextest does not run doc-tests; the workspace has none today. Should one appear (a ``` block
# in a doc comment), cargo test runs them.
if grep -rqE '^\s*//[/!].*```' --include='*.rs' src core/src proto/src worker/src coordinator/src; then
  cargo test --release --locked --workspace --doc 2>&1 | tee "$log" || status=$?
  grep '^test result:' "$log" >>"$results" || true
fi
phase tests

# The fuzz targets are built (or the build failed, or there is no nightly); fuzz for real now.
fuzz_status=0
wait "$fuzz_build" || fuzz_status=$?
grep -E '^fuzz: (built|SKIPPED)' "$fuzz_build_log" || true
if ((fuzz_status == 0)); then
  # Each target runs for its own budget (scripts/fuzz.sh); LORABEAM_FUZZ_SECONDS overrides them all.
  scripts/fuzz.sh ${LORABEAM_FUZZ_SECONDS:-} 2>&1 | tail -n 40 || fuzz_status=$?
elif ((fuzz_status != 3)); then
  tail -n 30 "$fuzz_build_log"
fi
if ((fuzz_status == 3)); then
  echo "lorabeam: fuzzing skipped (no nightly toolchain)"
elif ((fuzz_status)); then
  echo "test result: FAILED. 0 passed; 1 failed; (fuzzing)" >>"$results"
  status=$fuzz_status
else
  echo "test result: ok. 1 passed; 0 failed; (fuzzing)" >>"$results"
fi
phase fuzz

helm_status=0
wait "$helm" || helm_status=$?
if ((helm_status)); then
  cat "$helm_log"
else
  tail -n 9 "$helm_log"
fi
if ((helm_status)); then
  echo "test result: FAILED. 0 passed; 1 failed; (helm chart checks)" >>"$results"
  status=$helm_status
else
  echo "test result: ok. 1 passed; 0 failed; (helm chart checks)" >>"$results"
fi
phase helm

echo "lorabeam: seconds per phase: $(awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }' "$phases"); total $(($(date +%s) - run_started))"
# One closing line for the whole run: the tests, the doc-tests if any, fuzzing and the chart.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "lorabeam: %d passed, %d failed\n", p, f }' "$results"
exit "$status"
