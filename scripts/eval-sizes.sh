#!/usr/bin/env bash
# Compressed size of every file of a directory (default corpus/eval) with
# one lmic binary, and the total: a quick size-only comparison of two builds
# (bytes are the same on every machine, so no baseline needs to run beside
# it). `lmic bench` remains the full, verified, side-by-side measurement.
#   scripts/eval-sizes.sh [LMIC] [DIR] [-- extra compress arguments]
set -euo pipefail
bin=${1:-target/release/lmic}
dir=${2:-corpus/eval}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = -- ] && shift
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total=0
for f in "$dir"/*.wav; do
  b=$(basename "$f" .wav)
  "$bin" compress -q -f "$@" "$f" "$out/$b.lmc"
  s=$(stat -c %s "$out/$b.lmc")
  total=$((total + s))
  echo "$b $s"
done
echo "TOTAL $total"
