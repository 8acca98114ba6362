#!/usr/bin/env bash
# Fetches a small HELD-OUT corpus of real recordings into corpus/heldout/
# (git-ignored), taken from Debian packages that are NOT the training ones
# (asterisk-core-sounds-en-wav, asterisk-moh-opsound-wav, sonic-pi-samples).
#
#   corpus/heldout/speech/  16-bit speech (8, 16, 44.1 and 48 kHz; one native 16 kHz)
#   corpus/heldout/music/   16-bit music and drum recordings
#   corpus/heldout/sounds/  16-bit real ambience / crowd recordings
#   corpus/heldout/24bit/   24-bit real drum recordings (48 kHz)
#   corpus/heldout/8bit/    8-bit real recordings (crowd, laughter)
#   corpus/heldout/licenses/PKG.copyright  Debian copyright file of every source package
#   corpus/heldout/SOURCES.md              per-file provenance, format and licence
#
# Packages are fetched with `apt-get download` and unpacked into a temporary
# directory (nothing is installed except sox, if missing). Only files that are
# missing are (re)built, so a second run downloads nothing. Needs root (apt-get)
# the first time. About 230 MB is downloaded once (hydrogen-drumkits is 143 MB);
# the output is ~23 MB in 16 files.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=corpus/heldout
mkdir -p "$OUT"/speech "$OUT"/music "$OUT"/sounds "$OUT"/24bit "$OUT"/8bit "$OUT"/licenses

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
updated=0

apt_update_once() {
  if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi
}

# Tools: sox with the base format plugins (WAV/FLAC/Ogg Vorbis/AIFF).
if ! command -v sox >/dev/null || ! sox -h 2>/dev/null | grep -qw vorbis; then
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sox libsox-fmt-base >/dev/null
fi

# fetch PKG PATTERN...  -> downloads PKG once, extracts the matching paths (plus
# its copyright file) under $WORK/PKG, records the version and copyright.
fetch() {
  local pkg=$1; shift
  local dir=$WORK/$pkg
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    if ! (cd "$WORK" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
      apt_update_once
      (cd "$WORK" && apt-get download -qq "$pkg" >/dev/null)
    fi
  fi
  local deb
  deb=$(ls "$WORK/${pkg}"_*.deb)
  dpkg-deb --fsys-tarfile "$deb" |
    tar -x -C "$dir" --wildcards "./usr/share/doc/$pkg/copyright" "$@"
  cp "$dir/usr/share/doc/$pkg/copyright" "$OUT/licenses/$pkg.copyright"
  printf '%s\t%s\n' "$pkg" "$(dpkg-deb -f "$deb" Version)" > "$OUT/licenses/$pkg.version"
}

have() { [ -s "$OUT/$1" ]; }
made=()
# finish TMP OUTNAME: atomically moves a finished file into place.
finish() { mv "$1" "$OUT/$2"; made+=("$2"); }

# ---------------------------------------------------------------- speech
C2=/usr/share/codec2
if ! have speech/codec2-speech-16k16-mono.wav || ! have speech/codec2-ve9qrp-8k16-mono.wav; then
  fetch codec2-examples ".$C2/raw/speech_orig_16k.wav" ".$C2/wav/ve9qrp.wav"
  R=$WORK/codec2-examples$C2
  have speech/codec2-speech-16k16-mono.wav ||
    { cp "$R/raw/speech_orig_16k.wav" "$WORK/t.wav"; finish "$WORK/t.wav" speech/codec2-speech-16k16-mono.wav; }
  have speech/codec2-ve9qrp-8k16-mono.wav ||
    { sox "$R/wav/ve9qrp.wav" "$WORK/t.wav" trim 0 60; finish "$WORK/t.wav" speech/codec2-ve9qrp-8k16-mono.wav; }
fi

ALSA_NAMES=(Front_Left Front_Center Front_Right Rear_Left Rear_Center Rear_Right Side_Left Side_Right)
if ! have speech/alsa-voice-48k16-mono.wav || ! have speech/alsa-voice-16k16-mono.wav; then
  fetch alsa-utils './usr/share/sounds/alsa/*.wav'
  R=$WORK/alsa-utils/usr/share/sounds/alsa
  src=(); for n in "${ALSA_NAMES[@]}"; do src+=("$R/$n.wav"); done
  sox "${src[@]}" "$WORK/alsa48.wav"          # plain concatenation, no processing
  have speech/alsa-voice-48k16-mono.wav ||
    { cp "$WORK/alsa48.wav" "$WORK/t.wav"; finish "$WORK/t.wav" speech/alsa-voice-48k16-mono.wav; }
  # Derived 16 kHz copy (sox's default resampler + TPDF dither, -R = repeatable).
  have speech/alsa-voice-16k16-mono.wav ||
    { sox -R "$WORK/alsa48.wav" -b 16 "$WORK/t.wav" rate 16000; finish "$WORK/t.wav" speech/alsa-voice-16k16-mono.wav; }
fi

if ! have speech/apollo11-44k16-mono.wav; then
  fetch supercollider-common ./usr/share/SuperCollider/sounds/a11wlk01.wav
  cp "$WORK/supercollider-common/usr/share/SuperCollider/sounds/a11wlk01.wav" "$WORK/t.wav"
  finish "$WORK/t.wav" speech/apollo11-44k16-mono.wav
fi

# ---------------------------------------------------------------- music
if ! have music/tuxi-44k16-st.wav; then
  fetch tuxtype-data ./usr/share/tuxtype/sounds/tuxi.ogg
  # Ogg Vorbis decoded to 16-bit PCM, first 30 s.
  sox "$WORK/tuxtype-data/usr/share/tuxtype/sounds/tuxi.ogg" -b 16 "$WORK/t.wav" trim 0 30
  finish "$WORK/t.wav" music/tuxi-44k16-st.wav
fi

PYO=/usr/lib/python3/dist-packages/pyo/examples/snds
if ! have music/pyo-ounkmaster-44k16-st.wav || ! have music/pyo-flute-44k16-mono.wav; then
  fetch python3-pyo ".$PYO/ounkmaster.aif" ".$PYO/flute.aif"
  R=$WORK/python3-pyo$PYO
  have music/pyo-ounkmaster-44k16-st.wav ||
    { sox "$R/ounkmaster.aif" "$WORK/t.wav"; finish "$WORK/t.wav" music/pyo-ounkmaster-44k16-st.wav; }
  have music/pyo-flute-44k16-mono.wav ||
    { sox "$R/flute.aif" "$WORK/t.wav"; finish "$WORK/t.wav" music/pyo-flute-44k16-mono.wav; }
fi

# ---------------------------------------------------------------- sounds
LC=/usr/share/games/lincity-ng/sounds
if ! have sounds/lincity-market-44k16-st.wav || ! have sounds/lincity-crowd-11k16-st.wav; then
  fetch lincity-ng-data ".$LC/MarketFull1.wav" ".$LC/SportsCroud3.wav"
  R=$WORK/lincity-ng-data$LC
  have sounds/lincity-market-44k16-st.wav ||
    { cp "$R/MarketFull1.wav" "$WORK/t.wav"; finish "$WORK/t.wav" sounds/lincity-market-44k16-st.wav; }
  have sounds/lincity-crowd-11k16-st.wav ||
    { cp "$R/SportsCroud3.wav" "$WORK/t.wav"; finish "$WORK/t.wav" sounds/lincity-crowd-11k16-st.wav; }
fi

# ---------------------------------------------------------------- drums (16 and 24 bit)
KITS=/usr/share/hydrogen/data/drumkits
FORZEE=(Kick Snare HiHatClosed TomHigh TomMid TomLow SnareRim RideBell)
if ! have music/blackpearl-drums-44k16-mono.wav || ! have 24bit/forzee-drums-48k24-st.wav ||
   ! have 24bit/rumpf-drums-48k24-mono.wav; then
  fetch hydrogen-drumkits ".$KITS/The Black Pearl 1.0/*-Med.wav" ".$KITS/ForzeeStereo/*-2.wav" \
    ".$KITS/rumpf_kit_z01_h2/*.flac"
  R=$WORK/hydrogen-drumkits$KITS
  if ! have music/blackpearl-drums-44k16-mono.wav; then
    # One hit per instrument (the "Med" velocity layer), in name order.
    mapfile -t src < <(find "$R/The Black Pearl 1.0" -name '*-Med.wav' | LC_ALL=C sort)
    sox "${src[@]}" "$WORK/t.wav"
    finish "$WORK/t.wav" music/blackpearl-drums-44k16-mono.wav
  fi
  if ! have 24bit/forzee-drums-48k24-st.wav; then
    src=(); for n in "${FORZEE[@]}"; do src+=("$R/ForzeeStereo/$n-2.wav"); done
    sox "${src[@]}" -b 24 "$WORK/t.wav" trim 0 20
    finish "$WORK/t.wav" 24bit/forzee-drums-48k24-st.wav
  fi
  if ! have 24bit/rumpf-drums-48k24-mono.wav; then
    # Every 4th sample of the kit (33 of 131 hits), in name order.
    mapfile -t src < <(find "$R/rumpf_kit_z01_h2" -name '*.flac' | LC_ALL=C sort | awk 'NR % 4 == 1')
    sox "${src[@]}" -b 24 "$WORK/t.wav"
    finish "$WORK/t.wav" 24bit/rumpf-drums-48k24-mono.wav
  fi
fi

# ---------------------------------------------------------------- 8 bit
CL=/usr/share/games/circuslinux/data/sounds
if ! have 8bit/circuslinux-applause-11k8-mono.wav || ! have 8bit/circuslinux-cheering-11k8-mono.wav; then
  fetch circuslinux-data ".$CL/applause.wav" ".$CL/cheering.wav"
  R=$WORK/circuslinux-data$CL
  have 8bit/circuslinux-applause-11k8-mono.wav ||
    { cp "$R/applause.wav" "$WORK/t.wav"; finish "$WORK/t.wav" 8bit/circuslinux-applause-11k8-mono.wav; }
  have 8bit/circuslinux-cheering-11k8-mono.wav ||
    { cp "$R/cheering.wav" "$WORK/t.wav"; finish "$WORK/t.wav" 8bit/circuslinux-cheering-11k8-mono.wav; }
fi
if ! have 8bit/tuxpaint-giggle-22k8-mono.wav; then
  fetch tuxpaint-data ./usr/share/tuxpaint/sounds/giggle.wav
  cp "$WORK/tuxpaint-data/usr/share/tuxpaint/sounds/giggle.wav" "$WORK/t.wav"
  finish "$WORK/t.wav" 8bit/tuxpaint-giggle-22k8-mono.wav
fi

# ---------------------------------------------------------------- SOURCES.md
# file | package | original path(s) | licence | how it was made
MANIFEST=(
"speech/codec2-speech-16k16-mono.wav|codec2-examples|$C2/raw/speech_orig_16k.wav|LGPL-2.1 (© David Rowe)|verbatim copy; native 16 kHz speech"
"speech/codec2-ve9qrp-8k16-mono.wav|codec2-examples|$C2/wav/ve9qrp.wav|LGPL-2.1 (© David Rowe)|first 60 s (sox trim); off-air HF radio speech"
"speech/alsa-voice-48k16-mono.wav|alsa-utils|/usr/share/sounds/alsa/{${ALSA_NAMES[*]}}.wav|GPL-2|the 8 spoken channel names concatenated (sox), no other processing"
"speech/alsa-voice-16k16-mono.wav|alsa-utils|(as above)|GPL-2|DERIVED: the 48 kHz file resampled to 16 kHz (sox -R rate 16000, default TPDF dither)"
"speech/apollo11-44k16-mono.wav|supercollider-common|/usr/share/SuperCollider/sounds/a11wlk01.wav|GPL-2+ (package Files: *); the recording is NASA Apollo 11 audio (US public domain)|verbatim copy"
"music/tuxi-44k16-st.wav|tuxtype-data|/usr/share/tuxtype/sounds/tuxi.ogg|public domain (Emmett Plant, per the package copyright)|Ogg Vorbis decoded to 16-bit PCM, first 30 s (lossy-codec origin)"
"music/pyo-ounkmaster-44k16-st.wav|python3-pyo|$PYO/ounkmaster.aif|LGPL-3 (© Olivier Bélanger)|AIFF -> WAV, samples unchanged"
"music/pyo-flute-44k16-mono.wav|python3-pyo|$PYO/flute.aif|LGPL-3 (© Olivier Bélanger)|AIFF -> WAV, samples unchanged"
"music/blackpearl-drums-44k16-mono.wav|hydrogen-drumkits|$KITS/The Black Pearl 1.0/*-Med.wav|GPL-2 (Glen MacArthur)|the 'Med' velocity hit of each instrument, concatenated in name order"
"sounds/lincity-market-44k16-st.wav|lincity-ng-data|$LC/MarketFull1.wav|GPL-2+ (sound effects dual GPL / CC-BY-SA-2.0)|verbatim copy; market crowd ambience"
"sounds/lincity-crowd-11k16-st.wav|lincity-ng-data|$LC/SportsCroud3.wav|GPL-2+ (sound effects dual GPL / CC-BY-SA-2.0)|verbatim copy; sports crowd, 11025 Hz"
"24bit/forzee-drums-48k24-st.wav|hydrogen-drumkits|$KITS/ForzeeStereo/{${FORZEE[*]}}-2.wav|GPL-2 (Vladimir Sadovnikov, Alexander Belokurov)|concatenated in that order, first 20 s"
"24bit/rumpf-drums-48k24-mono.wav|hydrogen-drumkits|$KITS/rumpf_kit_z01_h2/*.flac (every 4th in name order)|CC-BY-3.0 (Emanuel Rumpf)|FLAC decoded and concatenated, no other processing"
"8bit/circuslinux-applause-11k8-mono.wav|circuslinux-data|$CL/applause.wav|GPL (© Bill Kendrick; version not stated)|verbatim copy (8-bit unsigned PCM)"
"8bit/circuslinux-cheering-11k8-mono.wav|circuslinux-data|$CL/cheering.wav|GPL (© Bill Kendrick; version not stated)|verbatim copy (8-bit unsigned PCM)"
"8bit/tuxpaint-giggle-22k8-mono.wav|tuxpaint-data|/usr/share/tuxpaint/sounds/giggle.wav|GPL-2+ (© Bill Kendrick)|verbatim copy (8-bit unsigned PCM)"
)

{
  echo "# Held-out corpus: provenance"
  echo
  echo "Made by \`scripts/fetch-heldout.sh\` from Debian packages that are not used for"
  echo "training. All files are integer-PCM WAV. Each package's Debian copyright file is in"
  echo "\`licenses/PKG.copyright\`, its version in \`licenses/PKG.version\`."
  echo
  echo "| file | rate | bits | ch | seconds | bytes | package (version) | original path | licence | how |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for row in "${MANIFEST[@]}"; do
    IFS='|' read -r f pkg orig lic how <<<"$row"
    ver=$(cut -f2 "$OUT/licenses/$pkg.version" 2>/dev/null || echo '?')
    printf '| %s | %s | %s | %s | %.2f | %s | %s (%s) | `%s` | %s | %s |\n' "$f" \
      "$(soxi -r "$OUT/$f")" "$(soxi -b "$OUT/$f")" "$(soxi -c "$OUT/$f")" "$(soxi -D "$OUT/$f")" \
      "$(stat -c %s "$OUT/$f")" "$pkg" "$ver" "$orig" "$lic" "$how"
  done
  echo
  echo "Not filled: no Debian package found with 24-bit *speech*; the only 24-bit real"
  echo "recordings found are drum samples (hydrogen-drumkits). Native 16 kHz speech exists"
  echo "only as codec2's 10.8 s sample; the second 16 kHz file is resampled from 48 kHz."
} > "$OUT/SOURCES.md"

# ---------------------------------------------------------------- report
if [ ${#made[@]} -gt 0 ]; then echo "made ${#made[@]} file(s):"; printf '  %s\n' "${made[@]}"; else echo "all files present; nothing to do"; fi
for row in "${MANIFEST[@]}"; do
  f=${row%%|*}
  printf '%-42s %6s Hz %2s-bit %s ch %6.2f s\n' "$f" "$(soxi -r "$OUT/$f")" "$(soxi -b "$OUT/$f")" \
    "$(soxi -c "$OUT/$f")" "$(soxi -D "$OUT/$f")"
done
printf 'total: %s in %s\n' "$(du -sh --exclude=licenses --exclude=SOURCES.md "$OUT" | cut -f1)" "$OUT"
