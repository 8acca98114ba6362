#!/usr/bin/env bash
# Trains candidate built-in models on a machine with an NVIDIA GPU and
# PyTorch (no Rust needed), several configurations at once on one GPU.
#
#   DATA=.gpu/data OUT=/tmp/runs MINUTES=4.5 CONFIGS="v4init v4scratch" scripts/gpu-train.sh
#
# DATA holds what was prepared on a development machine:
#   all.train.bin.xz, all.val.bin.xz  `lmic train --dump-chunks` output, xz'd
#   ref.f32                           `cargo run --release --example
#                                     chunk_logits -- lmic:audio-v3
#                                     base.val.bin 4 ref.f32`
# .gpu/ is git-ignored (the uncompressed dumps are hundreds of MB): a device
# run names the three files in its carry list.
# First proves that train-torch.py's network computes lmic's logits
# (audio-v2's weights, the first records of the validation file), then trains.
# Each run writes OUT/NAME/{model.safetensors,log.txt} and nothing else there
# (the device machine brings back at most 8 files: 4 runs); its console
# output goes to ${TMPDIR:-/tmp}/NAME.log. CONFIGS (optional) picks runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-.gpu/data}
OUT=${OUT:-/tmp/runs}
MINUTES=${MINUTES:-7}
CONFIGS=${CONFIGS:-"v5c0 v5c16 v5c32"}
mkdir -p "$OUT"
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
python3 scripts/train-torch.py --val "$DATA/all.val.bin.xz" \
  --check models/audio-v2/model.safetensors "$DATA/ref.f32"
common=(--train "$DATA/all.train.bin.xz" --val "$DATA/all.val.bin.xz" --minutes "$MINUTES"
        --batch "${BATCH:-1024}" --eval-seconds 45)
for name in $CONFIGS; do
  case $name in
    # audio-v2's network, from its weights or from scratch.
    v4init) args=(--init models/audio-v2/model.safetensors --lr 1e-3 --warmup 100) ;;
    v4scratch) args=(--lr 2e-3) ;;
    # Wider: head size 32 as before.
    h192) args=(--hidden 192 --heads 6 --intermediate 512 --lr 2e-3) ;;
    h256) args=(--hidden 256 --heads 8 --intermediate 768 --lr 1.5e-3) ;;
    # audio-v4's network and weights seeing 0, 16 or 32 tokens of the chunk
    # before (the records carry 32; the model's lmic_carry_tokens).
    v5c0) args=(--init models/audio-v4/model.safetensors --lr 1e-3 --warmup 50) ;;
    v5c16) args=(--init models/audio-v4/model.safetensors --lr 1e-3 --warmup 50 --carry 16) ;;
    v5c32) args=(--init models/audio-v4/model.safetensors --lr 1e-3 --warmup 50 --carry 32) ;;
    # v5c32's weights (models/audio-v5) trained on at a lower rate.
    v5more) args=(--init models/audio-v5/model.safetensors --lr 3e-4 --warmup 20 --carry 32) ;;
    v5big) args=(--init models/audio-v5/model.safetensors --lr 5e-4 --warmup 20 --carry 32 --batch 4096) ;;
    *) echo "unknown configuration $name" >&2; exit 2 ;;
  esac
  python3 scripts/train-torch.py "${common[@]}" "${args[@]}" --out "$OUT/$name" \
    >"${TMPDIR:-/tmp}/$name.log" 2>&1 &
done
wait
for name in $CONFIGS; do echo "== $name"; tail -3 "${TMPDIR:-/tmp}/$name.log"; done
