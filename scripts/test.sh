#!/usr/bin/env bash
# Every test: unit, integration (conformance against tests/conformance, checkpoint
# layouts, loader and input errors, the fleet with real redis-server and processes on
# loopback, traces and metrics), with real libtorch; then the Helm chart's lint, render and
# schema validation, and a short fuzzing run. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# setup.sh has just built every binary; the process tests use them as they are.
LORABEAM_BINARIES_BUILT=1 cargo test --release --locked --workspace "$@" 2>&1 | tee "$log" || status=$?
fuzz_status=0
scripts/fuzz.sh "${LORABEAM_FUZZ_SECONDS:-30}" 2>&1 | tail -n 12 || fuzz_status=$?
if ((fuzz_status == 3)); then
  echo "lorabeam: fuzzing skipped (no nightly toolchain)"
elif ((fuzz_status)); then
  echo "test result: FAILED. 0 passed; 1 failed; (fuzzing)" >>"$log"
  status=$fuzz_status
else
  echo "test result: ok. 1 passed; 0 failed; (fuzzing)" >>"$log"
fi
helm_status=0
scripts/check-helm.sh 2>&1 | tail -n 9 || helm_status=$?
if ((helm_status)); then
  echo "test result: FAILED. 0 passed; 1 failed; (helm chart checks)" >>"$log"
  status=$helm_status
else
  echo "test result: ok. 1 passed; 0 failed; (helm chart checks)" >>"$log"
fi
# One closing line for the whole run: cargo prints one per test binary, the last often a
# doc-test run with nothing in it.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "lorabeam: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
