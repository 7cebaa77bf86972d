# Sourced by scripts/fuzz.sh and scripts/fuzz-measure.sh: libFuzzer's options for a target.
#  -rss_limit_mb: libtorch alone keeps ~0.5 GB resident; the targets cap the Rust heap at
#    1 GiB live (fuzz/src/guard.rs), so 2 GB resident is a runaway libtorch allocation.
#  -malloc_limit_mb: one allocation over 256 MB. libFuzzer only enforces it under a sanitizer
#    (its malloc hooks); without one, guard.rs enforces the same cap on the Rust heap.
#  -timeout: an input parses in milliseconds (a 4 MiB pickle in well under a second); 10 s
#    is a hang.
#  -max_len: the byte-level targets mutate real files; a structured input needs few bytes,
#    its Repeat blocks and sizes do the growing.
fuzz_options() {
  local opts="-rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10"
  case $1 in
  checkpoint_reader | jsonl_records) opts+=" -max_len=65536" ;;
  *) opts+=" -max_len=8192" ;;
  esac
  echo "$opts"
}
