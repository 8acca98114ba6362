#!/usr/bin/env bash
# Reproduces the built-in model lmic:audio-v1 (models/audio-v1/): fetches the
# development corpus, trains for 70 minutes on this machine's 2 cores, and
# copies the result (f16 weights, config, tokenizer) into models/audio-v1/.
# Rebuild lmic afterwards to embed it; its fingerprint will differ unless
# every step runs identically (the seed fixes data order and initialisation;
# candle's CPU matmuls are not bit-reproducible across machines).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-corpus.sh
cargo build --release
run=${RUN_DIR:-target/train-audio-v1}
# glibc returns the large autograd buffers to the kernel after every step;
# keeping them roughly halves the step time on 2 cores.
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824 \
  ./target/release/lmic train corpus/speech corpus/music corpus/sonic -o "$run" \
  --steps 100000 --minutes 70 --eval-every 100 --lr 2e-3 --context 256 --batch 32 \
  --hidden 128 --layers 4 --heads 4 --intermediate 384 --seed 1 "$@"
mkdir -p models/audio-v1
cp "$run"/config.json "$run"/tokenizer.json "$run"/model.safetensors models/audio-v1/
