#!/usr/bin/env bash
# Writes the seed inputs of the fuzz corpora (fuzz/corpus/wav/seed-*, and .lmc entries named by content in container/ and decompress/): short WAVs
# of every sample format lmic reads, and their .lmc files made with the
# built-in model. Needs sox and a built lmic (target/release/lmic).
set -euo pipefail
cd "$(dirname "$0")/.."
lmic=${LMIC:-target/release/lmic}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sox -n -r 8000 -b 8 -c 1 -e unsigned "$tmp/u8-mono.wav" synth 0.03 sine 300
sox -n -r 16000 -b 16 -c 1 "$tmp/s16-mono.wav" synth 0.02 pinknoise vol 0.3
sox -n -r 44100 -b 16 -c 2 "$tmp/s16-stereo.wav" synth 0.005 sine 440 sine 660
sox -n -r 48000 -b 24 -c 1 "$tmp/s24-mono.wav" synth 0.004 sine 1000
sox -n -r 8000 -b 32 -c 1 -e signed "$tmp/s32-mono.wav" synth 0.005 sine 200
sox -n -r 8000 -b 32 -c 1 -e floating-point "$tmp/f32-mono.wav" synth 0.005 sine 200
sox -n -r 8000 -b 16 -c 6 "$tmp/s16-6ch.wav" synth 0.003 sine 100
# Odd data length and a chunk after the data (kept verbatim by lmic).
python3 - "$tmp" <<'PY'
import struct, sys
d = sys.argv[1]
data = bytes(range(0, 255, 2))[:101]
fmt = struct.pack('<HHIIHH', 1, 1, 8000, 8000, 1, 8)
body = b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'data' + struct.pack('<I', len(data)) + data + b'\0' \
     + b'LIST' + struct.pack('<I', 4) + b'INFO'
open(d + '/odd-tail.wav', 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
PY
for t in container decompress wav; do mkdir -p "fuzz/corpus/$t"; rm -f fuzz/corpus/$t/seed-*; done
for w in "$tmp"/*.wav; do
  n=$(basename "$w" .wav)
  cp "$w" "fuzz/corpus/wav/seed-$n.wav"
  "$lmic" compress -q -f "$w" "$tmp/$n.lmc"
  # Named by content like libFuzzer's own entries (*.lmc is git-ignored).
  h=$(sha1sum "$tmp/$n.lmc" | cut -c1-40)
  cp "$tmp/$n.lmc" "fuzz/corpus/container/$h"
  cp "$tmp/$n.lmc" "fuzz/corpus/decompress/$h"
done
ls -l fuzz/corpus/wav/seed-* | awk '{s+=$5} END {print NR " WAV seeds, " s " bytes"}'
