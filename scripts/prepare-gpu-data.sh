#!/usr/bin/env bash
# Prepares what scripts/gpu-train.sh needs, on a development machine, into
# .gpu/data/ (git-ignored; about 53 MB, which with the tracked tree stays
# under the device machine's 64 MiB limit):
#   all.train.bin.xz  the chunks compression would model (lmic train
#                     --dump-chunks) of corpus/{speech,music,sonic} and
#                     corpus/extra/*'s training files, 74% of them (seeded),
#                     each after the 32 tokens the encoder would carry into it
#   all.val.bin.xz    the first 4 chunks of the base validation files, then
#                     12,000 drawn from both validation splits
#   ref.f32           lmic's logits for those first 4 chunks (--check)
# Needs corpus/ (scripts/fetch-corpus.sh, scripts/fetch-train-extra.sh) and a
# release build. How lmic:audio-v4 was made: models/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
D=.gpu/data
mkdir -p "$D"
lmic=target/release/lmic
$lmic train corpus/speech corpus/music corpus/sonic --mapping cascade --context 256 \
  --dump-chunks "$D/base"
$lmic train corpus/extra/music corpus/extra/solo corpus/extra/speech corpus/extra/field \
  corpus/extra/lowbit --mapping cascade --context 256 --dump-chunks "$D/extra"
python3 scripts/chunk-records.py "$D" --seed "${SEED:-1}"
xz -8 -T2 -f -c "$D/sub.train.bin" >"$D/all.train.bin.xz"
xz -9 -T2 -f -k "$D/all.val.bin"
cargo run --release -q --example chunk_logits -- lmic:audio-v3 "$D/base.val.bin" 4 "$D/ref.f32"
ls -l "$D"/all.*.xz "$D/ref.f32"
