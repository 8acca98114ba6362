#!/usr/bin/env bash
# Builds corpus/eval/: the files lmic's built-in model is judged on. None of
# them was trained on: the validation files of `lmic train --val-every 8`
# (every 8th file of each training directory) and recordings from other
# Debian packages (scripts/fetch-heldout.sh). Each is cut to its first
# $SECONDS_MAX seconds (default 3) so a bench run takes minutes. Needs sox.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_MAX:-3}
[ -d corpus/speech ] || scripts/fetch-corpus.sh
[ -d corpus/heldout/speech ] || scripts/fetch-heldout.sh
command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox >/dev/null; }
rm -rf corpus/eval && mkdir -p corpus/eval
cut() { sox -V1 "$1" "corpus/eval/$2" trim 0 "$secs"; }
for d in speech music sonic; do
  # Validation files, as `lmic train` chooses them; a spread of them only.
  ls corpus/$d/*.wav | sort | awk 'NR%8==1' | awk 'NR%3==1' | while read -r f; do
    cut "$f" "val-$d-$(basename "$f")"
  done
done
find corpus/heldout -name '*.wav' | sort | while read -r f; do
  cut "$f" "heldout-$(basename "$f")"
done
ls corpus/eval | wc -l
du -sh corpus/eval
