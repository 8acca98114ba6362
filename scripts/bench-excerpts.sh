#!/usr/bin/env bash
# Cuts short excerpts of the development corpus (scripts/fetch-corpus.sh) into
# corpus/excerpts/, for measurements with slow models such as SmolLM2-135M
# (~200 tokens/s on 2 cores: whole files would take hours). Needs sox.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sox >/dev/null || { apt-get update -qq && apt-get install -y -qq sox >/dev/null; }
mkdir -p corpus/excerpts
# name            source                                   start  seconds
while read -r name src start len; do
  sox "$src" "corpus/excerpts/$name.wav" trim "$start" "$len"
done <<'LIST'
speech-8k16-mono  corpus/speech/agent-pass.wav             0.3    0.5
music-8k16-mono   corpus/music/macroform-cold_day.wav      60     0.5
piano-44k16-st    corpus/sonic/ambi_piano.wav              0.5    0.05
swash-44k24-st    corpus/sonic/perc_swash.wav              0.05   0.03
LIST
for f in corpus/excerpts/*.wav; do printf '%-40s %s\n' "$f" "$(soxi "$f" | grep -E 'Sample Rate|Precision|Duration' | tr -s ' ' | tr '\n' ' ')"; done
