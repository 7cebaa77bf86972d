# Sourced by the scripts: where libtorch lives and how the build finds it.
# torch 2.11.0 from PyPI is libtorch for tch 0.24; it lives in a per-user cache so that fresh
# clones and CI runs reuse its ~4.7 GB.
LORABEAM_TORCH_VERSION=2.11.0
LORABEAM_CACHE=${LORABEAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lorabeam}
LORABEAM_VENV=$LORABEAM_CACHE/torch-$LORABEAM_TORCH_VERSION
export LIBTORCH_USE_PYTORCH=1
export PYTHON_SYS_EXECUTABLE=$LORABEAM_VENV/bin/python
export PATH=$LORABEAM_VENV/bin:$HOME/.cargo/bin:$PATH
# The binaries this checkout builds (`cargo build --release`), so the README's bare
# `lorabeam`, `lorabeam-coordinator` and `lorabeam-worker` are these.
lorabeam_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
export PATH=$lorabeam_root/target/release:$PATH
unset lorabeam_root
# The official METEOR 1.5 jar (with its paraphrase data beside it) and the Stanford CoreNLP
# 3.4.1 jar (the tests compare the Rust PTB tokeniser with it), from pycocoevalcap.
coco=$(ls -d "$LORABEAM_VENV"/lib/python3*/site-packages/pycocoevalcap 2>/dev/null | head -n 1 || true)
if [ -n "$coco" ]; then
  export LORABEAM_METEOR_JAR=${LORABEAM_METEOR_JAR:-$coco/meteor/meteor-1.5.jar}
  export LORABEAM_PTB_JAR=${LORABEAM_PTB_JAR:-$coco/tokenizer/stanford-corenlp-3.4.1.jar}
fi
unset coco
