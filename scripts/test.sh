#!/usr/bin/env bash
# Every test: unit, integration (conformance against ../shared/conformance, checkpoint
# layouts, loader and input errors), with real libtorch. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --locked --workspace "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: cargo prints one per test binary, the last often a
# doc-test run with nothing in it.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "lorabeam: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
