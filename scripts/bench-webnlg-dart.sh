#!/usr/bin/env bash
# Scores the whole WebNLG and DART test sets with the users' own pipeline (microsoft/LoRA's
# gpt2_decode.py, then WebNLG/GenerationEval's eval.py, through a runnable copy of both) and with
# `lorabeam score --task`, one after the other on the same machine, timing each whole process.
# Prints each command, its output, its wall time, and the load around it.
#
#   WEBNLG_PEER=DIR SCORE_PEER=score_peer.py WEBNLG_PREDICTIONS=P.jsonl DART_PREDICTIONS=Q.jsonl \
#     [WEBNLG_TEST=test_formatted.jsonl] [DART_TEST=test_formatted.jsonl] [LORABEAM=target/release/lorabeam] \
#     [BENCH_ONLY=lorabeam|peer] scripts/bench-webnlg-dart.sh
#
# WEBNLG_PEER: the copy of the users' tools (with the whole test sets under data/); SCORE_PEER:
# the script that runs gpt2_decode.py then eval.py on a predictions file (--task, --predictions,
# --filter, --metrics; it prints one JSON line). The predictions index the whole test sets' lines
# (gpt2_beam.py's {"id", "predict"}). Both sides compute BLEU, BLEU NLTK, METEOR, TER and chrF++.
set -euo pipefail
: "${WEBNLG_PEER:?the users tools: see the README, WebNLG and DART}"
: "${SCORE_PEER:?the peer scoring script}"
: "${WEBNLG_PREDICTIONS:?WebNLG predictions}"
: "${DART_PREDICTIONS:?DART predictions}"
WEBNLG_TEST=${WEBNLG_TEST:-$WEBNLG_PEER/data/webnlg_challenge_2017/test_formatted.jsonl}
DART_TEST=${DART_TEST:-$WEBNLG_PEER/data/dart/test_formatted.jsonl}
LORABEAM=${LORABEAM:-target/release/lorabeam}
ONLY=${BENCH_ONLY:-}

timed() {
  local label=$1
  shift
  echo "== $label"
  echo "\$ $*"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
  local start end
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  echo "wall: $(echo "$end - $start" | bc) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

peer() {
  timed "peer $1 $3" env WEBNLG_PEER="$WEBNLG_PEER" python3 "$SCORE_PEER" --task "$1" --predictions "$2" \
    --filter "$3" --metrics bleu,meteor,ter,chrf++
}

if [ "$ONLY" != peer ]; then
  timed "lorabeam webnlg (S, U, A in one run)" "$LORABEAM" score --task webnlg --data "$WEBNLG_TEST" \
    --predictions "$WEBNLG_PREDICTIONS"
  timed "lorabeam webnlg all, JSON" "$LORABEAM" score --task webnlg --filter all --data "$WEBNLG_TEST" \
    --predictions "$WEBNLG_PREDICTIONS" --json
  timed "lorabeam dart" "$LORABEAM" score --task dart --data "$DART_TEST" --predictions "$DART_PREDICTIONS" --json
fi
if [ "$ONLY" != lorabeam ]; then
  for filter in all seen unseen; do
    peer webnlg "$WEBNLG_PREDICTIONS" "$filter"
  done
  peer dart "$DART_PREDICTIONS" all
fi
