#!/usr/bin/env bash
# Reproduces the built-in models the way they were made, on this project's
# 2-core machine (CPU only), from the development corpus (fetched first):
#   lmic:audio-v1 (models/audio-v1/, classic mapping):
#     stage 1, plain mapping from seeded random weights (~50 min, 1000 steps);
#     stage 2, fixed-predictor residuals from stage 1's weights (30 min).
#   lmic:audio-v2 (models/audio-v2/, lpc mapping, the default):
#     stage 3, lpc residuals one character per sample, from audio-v1's
#     shipped weights (45 min); stage 4, 35 more minutes from stage 3's
#     weights at a lower learning rate and another data seed.
# STAGES=v2 skips v1 and starts from the committed models/audio-v1.
# Rebuild lmic afterwards to embed the results. Fingerprints will differ:
# learning-rate schedules follow the wall clock (--minutes) and candle's CPU
# matmuls are not bit-reproducible across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-corpus.sh
cargo build --release
run=${RUN_DIR:-target/train}
# glibc hands the large autograd buffers back to the kernel after every step;
# keeping them halved the step time here (measured at context 256, batch 32).
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824
common=(corpus/speech corpus/music corpus/sonic --context 256 --batch 32 --eval-every 100
  --hidden 128 --layers 4 --heads 4 --intermediate 384)
if [ "${STAGES:-all}" != v2 ]; then
  ./target/release/lmic train "${common[@]}" -o "$run-v1-raw" --seed 1 --mapping classic --steps 1000 \
    --minutes 70 --lr 2e-3
  ./target/release/lmic train "${common[@]}" -o "$run-v1" --seed 1 --mapping classic --predictor \
    --init "$run-v1-raw/checkpoint.safetensors" --steps 100000 --minutes 30 --lr 1e-3 --warmup 50
  mkdir -p models/audio-v1
  cp "$run-v1"/config.json "$run-v1"/tokenizer.json "$run-v1"/model.safetensors models/audio-v1/
fi
./target/release/lmic train "${common[@]}" -o "$run-v2a" --seed 1 --mapping lpc \
  --init models/audio-v1/model.safetensors --steps 100000 --minutes 45 --lr 1e-3 --warmup 50
./target/release/lmic train "${common[@]}" -o "$run-v2" --seed 2 --mapping lpc \
  --init "$run-v2a/checkpoint.safetensors" --steps 100000 --minutes 35 --lr 4e-4 --warmup 20
mkdir -p models/audio-v2
cp "$run-v2"/config.json "$run-v2"/tokenizer.json "$run-v2"/model.safetensors models/audio-v2/
