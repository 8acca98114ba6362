#!/usr/bin/env bash
# Peak memory against input size (issue: RSS bounded by the model plus a
# fixed working set, not by the input). For each duration in seconds (default
# 10 100 1000), makes a 16 kHz mono 16-bit WAV by repeating the held-out
# codec2 speech recording (or, without it, sox pink noise), then compresses
# and decompresses it file to file and stdin to stdout with the built-in
# model, printing wall time and peak RSS (GNU time's "Maximum resident set
# size"). Usage: scripts/memory.sh [SECONDS...]   (needs sox, /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
lmic=${LMIC:-target/release/lmic}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
src=corpus/heldout/speech/codec2-speech-16k16-mono.wav
[ -f "$src" ] || { sox -n -r 16000 -b 16 -c 1 "$tmp/src.wav" synth 10 pinknoise vol 0.3; src=$tmp/src.wav; }
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$tmp/t" "$@"
  read -r secs kb < "$tmp/t"
  printf '%-34s %9.1f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
}
for s in "${@:-10 100 1000}"; do
  for n in $s; do
    sox "$src" -r 16000 -b 16 -c 1 "$tmp/in.wav" repeat "$(( (n + 9) / 10 ))" trim 0 "$n"
    bytes=$(stat -c %s "$tmp/in.wav")
    echo "== $n s of audio, $bytes bytes"
    measure "compress file->file" "$lmic" compress -q -f "$tmp/in.wav" "$tmp/a.lmc"
    measure "decompress file->file" "$lmic" decompress -q -f "$tmp/a.lmc" "$tmp/b.wav"
    cmp "$tmp/in.wav" "$tmp/b.wav"
    measure "compress stdin->stdout" sh -c "\"$lmic\" compress -q - - < \"$tmp/in.wav\" > \"$tmp/c.lmc\""
    measure "decompress stdin->stdout" sh -c "\"$lmic\" decompress -q - - < \"$tmp/c.lmc\" > \"$tmp/c.wav\""
    cmp "$tmp/in.wav" "$tmp/c.wav"
    cmp "$tmp/a.lmc" "$tmp/c.lmc"
  done
done
