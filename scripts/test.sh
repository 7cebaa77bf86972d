#!/usr/bin/env bash
# Every test: unit, integration (conformance against ../shared/conformance, checkpoint
# layouts, loader and input errors), with real libtorch. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo test --release --locked --workspace "$@"
