#!/usr/bin/env bash
# Reproduces the built-in model lmic:audio-v1 (models/audio-v1/) the way it
# was made: fetch the development corpus; stage 1 trains on the plain
# mapping (~50 minutes, 1000 steps, on this project's 2-core machine);
# stage 2 continues from those weights on fixed-predictor residuals for 30
# minutes; the result (f16 weights, config, tokenizer) goes to
# models/audio-v1/. Rebuild lmic afterwards to embed it. The fingerprint will
# differ: the learning-rate schedule follows the wall clock (--minutes) and
# candle's CPU matmuls are not bit-reproducible across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-corpus.sh
cargo build --release
run=${RUN_DIR:-target/train-audio-v1}
# glibc hands the large autograd buffers back to the kernel after every step;
# keeping them halved the step time here (measured at context 256, batch 32).
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824
common=(corpus/speech corpus/music corpus/sonic --context 256 --batch 32 --eval-every 100
  --hidden 128 --layers 4 --heads 4 --intermediate 384 --seed 1)
./target/release/lmic train "${common[@]}" -o "$run-raw" --steps 1000 --minutes 70 --lr 2e-3
./target/release/lmic train "${common[@]}" -o "$run" --init "$run-raw/checkpoint.safetensors" \
  --predictor --steps 100000 --minutes 30 --lr 1e-3 --warmup 50
mkdir -p models/audio-v1
cp "$run"/config.json "$run"/tokenizer.json "$run"/model.safetensors models/audio-v1/
