#!/usr/bin/env bash
# Peak memory on a very large input (issue 6: compress and decompress a 1 GB
# WAV with peak RSS under model size + 256 MB, streaming stdin to stdout).
# Makes a 16 kHz mono WAV of about BYTES bytes of BITS-bit samples by
# repeating the held-out codec2 speech recording (sox pink noise without it),
# then
#   cat in.wav | lmic compress - big.lmc       (stdin through a pipe -> file)
#   lmic decompress big.lmc - | sha256sum       (file -> stdout through a pipe)
# and checks the round trip by SHA-256, printing GNU time's wall time and peak
# RSS for each and sampling VmRSS/VmHWM once a minute while they run, so a
# working set that grew with the input would show as a rising line.
#
# MODEL=small first trains (4 minutes, into target/big-small, kept) a model a
# ninth the size of the default one (2 layers, hidden 64; lpc mapping,
# 256-character chunks like the default), several times faster on two cores,
# which is what makes a 1 GB run fit in a working session here. (A random
# `make-tiny-model` would not do: its chunks lose to verbatim storage, so
# decompression would never run the model.) MODEL=PATH|lmic:NAME uses that
# model; without MODEL it is the default built-in model.
# Usage: [MODEL=small] scripts/big.sh [BYTES] [BITS]   (default 1e9, 32)
set -euo pipefail
cd "$(dirname "$0")/.."
lmic=$(realpath "${LMIC:-target/release/lmic}")
bytes=${1:-1000000000}
bits=${2:-32}
tmp=${TMPDIR:-/tmp}/lmic-big.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
model_args=()
if [ "${MODEL:-}" = small ]; then
  if [ ! -f target/big-small/model.safetensors ]; then
    scripts/fetch-corpus.sh
    "$lmic" train corpus/speech corpus/music corpus/sonic -o target/big-small --mapping lpc \
      --context 256 --batch 32 --hidden 64 --layers 2 --heads 4 --intermediate 128 \
      --seed 1 --steps 100000 --minutes 4 --lr 3e-3 --warmup 20 --eval-every 100
  fi
  model_args=(--model target/big-small)
elif [ -n "${MODEL:-}" ]; then
  model_args=(--model "$MODEL")
fi
src=corpus/heldout/speech/codec2-speech-16k16-mono.wav
[ -f "$src" ] || { sox -n -r 16000 -b 16 -c 1 "$tmp/src.wav" synth 10 pinknoise vol 0.3; src=$tmp/src.wav; }
samples=$((bytes / (bits / 8)))
secs=$(echo "scale=3; $samples / 16000" | bc)
len=$(soxi -D "$src")
reps=$(echo "$secs / $len + 1" | bc)
sox "$src" -r 16000 -b "$bits" -c 1 "$tmp/in.wav" repeat "$reps" trim 0 "${samples}s"
echo "input: $(stat -c %s "$tmp/in.wav") bytes, $samples $bits-bit samples ($secs s at 16 kHz), model ${MODEL:-default}"
want=$(sha256sum < "$tmp/in.wav" | cut -d' ' -f1)

sample_rss() { # pgrep -f pattern matching only the lmic process to watch
  local pid start=$SECONDS
  for _ in $(seq 50); do pid=$(pgrep -n -f "$1" || true); [ -n "$pid" ] && break; sleep 0.1; done
  [ -n "$pid" ] || return 0
  while [ -r "/proc/$pid/status" ]; do
    awk -v t=$((SECONDS - start)) '/VmRSS|VmHWM/ {v[$1]=$2} END {
      if (length(v)) printf "  %6d s  VmRSS %7.1f MiB  VmHWM %7.1f MiB\n", t, v["VmRSS:"]/1024, v["VmHWM:"]/1024}' \
      "/proc/$pid/status" 2>/dev/null || true
    for _ in $(seq 60); do [ -r "/proc/$pid/status" ] && sleep 1; done
  done
}
report() { # label, GNU time output file
  awk -v l="$1" '/Elapsed/ {e=$NF} /Maximum resident/ {m=$NF} END {
    printf "%s: wall %s, peak RSS %.1f MiB\n", l, e, m/1024}' "$2"
}

sample_rss "^$lmic compress .*$tmp/big.lmc" &
cat "$tmp/in.wav" | /usr/bin/time -v -o "$tmp/c.time" "$lmic" compress -q -f "${model_args[@]}" - "$tmp/big.lmc"
wait
report "compress (stdin pipe -> file)" "$tmp/c.time"
echo "compressed: $(stat -c %s "$tmp/big.lmc") bytes"

sample_rss "^$lmic decompress .*$tmp/big.lmc" &
got=$( { /usr/bin/time -v -o "$tmp/d.time" "$lmic" decompress -q "${model_args[@]}" "$tmp/big.lmc" - | sha256sum | cut -d' ' -f1; } )
wait
report "decompress (file -> stdout pipe)" "$tmp/d.time"
[ "$got" = "$want" ] && echo "round trip: identical (sha256 $want)" || { echo "round trip: MISMATCH"; exit 1; }
