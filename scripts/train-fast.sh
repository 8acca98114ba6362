#!/usr/bin/env bash
# Trains lmic:audio-fast1's network on this machine's CPU (no GPU needed):
# one layer, hidden 64, 2 heads, MLP 192, 16 carried tokens, from random
# weights, with scripts/train-torch.py on PyTorch's CPU build.
#
#   scripts/train-fast.sh [MINUTES]      (default 55; writes .gpu/fast/)
#
# The chunks are those of scripts/prepare-gpu-data.sh (`lmic train
# --dump-chunks`, cascade preset 2, corpus/{speech,music,sonic} and
# corpus/extra/*), all of them rather than the device's 64 MiB share; the
# validation chunks are the same draw. Needs corpus/ (scripts/fetch-corpus.sh,
# scripts/fetch-train-extra.sh), a release build, python3 with torch and numpy.
# How lmic:audio-fast1 was made: models/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
D=.gpu/data
mkdir -p "$D"
lmic=target/release/lmic
[ -s "$D/base.train.bin" ] || $lmic train corpus/speech corpus/music corpus/sonic \
  --mapping cascade --context 256 --dump-chunks "$D/base"
[ -s "$D/extra.train.bin" ] || $lmic train corpus/extra/music corpus/extra/solo \
  corpus/extra/speech corpus/extra/field corpus/extra/lowbit --mapping cascade --context 256 \
  --dump-chunks "$D/extra"
python3 scripts/chunk-records.py "$D" --full
python3 scripts/train-torch.py --train "$D/full.train.bin" --val "$D/all.val.bin" \
  --out .gpu/fast --minutes "${1:-55}" --hidden 64 --layers 1 --heads 2 --intermediate 192 \
  --carry 16 --batch 128 --lr 2e-3 --warmup 100 --dtype f32 --eval-seconds 300 \
  --val-max 4000 --threads "${THREADS:-1}" --checkpoint
