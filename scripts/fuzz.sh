#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60, the CI smoke run).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Starts from the committed corpora in fuzz/corpus/TARGET (new inputs found go
# to fuzz/work/TARGET, git-ignored) with a 1 GiB allocation limit and a 60 s
# per-input timeout. A crash, a leak, a timeout or an allocation over the limit
# fails the script; libFuzzer saves the input under fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(container wav mapping coder decompress)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly flags; fall back to the stable compiler with
# RUSTC_BOOTSTRAP where no nightly toolchain is installed.
if cargo +nightly --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
# Single-threaded rayon: deterministic coverage, no thread-pool noise.
export RAYON_NUM_THREADS=1
"${fuzz[@]}" build -O
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/corpus/$t"
  echo "== fuzz $t for ${secs}s"
  log="fuzz/work/$t.log"
  rc=0
  "${fuzz[@]}" run -O "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=60 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [ $rc -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz $t FAILED (input saved under fuzz/artifacts/$t)"
    exit 1
  fi
done
