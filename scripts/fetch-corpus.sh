#!/usr/bin/env bash
# Fetches the development corpus from Debian packages into corpus/ (git-ignored):
#   corpus/speech/  asterisk-core-sounds-en-wav   (8 kHz 16-bit mono speech)
#   corpus/music/   asterisk-moh-opsound-wav      (8 kHz 16-bit mono music)
#   corpus/sonic/   sonic-pi-samples, FLAC -> WAV (44.1 kHz, 16/24-bit, mono/stereo)
# Needs root (apt-get) the first time; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -d /usr/share/asterisk/sounds/en ] || need+=(asterisk-core-sounds-en-wav)
[ -d /usr/share/asterisk/moh ] || need+=(asterisk-moh-opsound-wav)
[ -d /usr/share/sonic-pi/samples ] || need+=(sonic-pi-samples)
command -v flac >/dev/null || need+=(flac)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p corpus/speech corpus/music corpus/sonic
# Speech: the top-level English prompts (the digits/ letters/ subfolders are
# near-duplicates of each other and would dominate by count).
find -L /usr/share/asterisk/sounds/en -maxdepth 1 -name '*.wav' -exec cp -n {} corpus/speech/ \;
cp -n /usr/share/asterisk/moh/*.wav corpus/music/
for f in /usr/share/sonic-pi/samples/*.flac; do
  out=corpus/sonic/$(basename "${f%.flac}").wav
  [ -s "$out" ] || flac -d -s -o "$out" "$f"
done
for d in speech music sonic; do
  printf '%-7s %5d files %6s\n' "$d" "$(ls corpus/$d | wc -l)" "$(du -sh corpus/$d | cut -f1)"
done
