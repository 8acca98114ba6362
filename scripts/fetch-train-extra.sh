#!/usr/bin/env bash
# Fetches an EXTRA training corpus of real recordings into corpus/extra/
# (git-ignored), from Debian packages that are neither evaluation sources
# (see scripts/fetch-heldout.sh and the reserved list) nor the first training
# sources (asterisk-core-sounds-en-wav, asterisk-moh-opsound-wav, sonic-pi-samples).
#
#   corpus/extra/music/   22-48 kHz music excerpts (mostly decoded Ogg Vorbis, 7 s each)
#   corpus/extra/solo/    instrument samples (SoundFont samples, drum kits), 16-bit PCM
#   corpus/extra/speech/  speech in ~25 languages (8 kHz PCM prompts; decoded Ogg voices)
#   corpus/extra/field/   ambience / environmental recordings and sound effects
#   corpus/extra/lowbit/  8-bit unsigned PCM recordings from games
#   corpus/extra/licenses/PKG.copyright  Debian copyright file of every source package
#
# No 24-bit ("hires") source was found in Debian besides the evaluation-only
# hydrogen-drumkits, so there is no hires/ class.
#
# Packages are fetched with `apt-get download` and unpacked into a temporary
# directory (set EXTRA_CACHE=DIR to keep the .debs between runs). Nothing is
# installed except sox, if missing. Each source is done once: a marker
# corpus/extra/.done/NAME is written when its files are complete, so a second
# run does nothing. Needs root (apt-get). About 1.7 GB is downloaded once
# (musescore-general-soundfont-lossless alone is 330 MB); the output is ~160 MB in ~380 files.
# Every output file is integer-PCM WAV, at most 60 s, at the source's rate and
# channel count. Lossy sources (Ogg Vorbis) are decoded to 16-bit (marked "lossy" in
# corpus-extra-SOURCES.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=corpus/extra
mkdir -p "$OUT"/{music,solo,speech,field,lowbit,licenses,.done}

if [ -n "${EXTRA_CACHE:-}" ]; then WORK=$EXTRA_CACHE; mkdir -p "$WORK"; else
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
updated=0
apt_update_once() { if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi; }

if ! command -v sox >/dev/null || ! sox -h 2>/dev/null | grep -qw vorbis; then
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sox libsox-fmt-base >/dev/null
fi
export LC_ALL=C

# fetch PKG PATTERN... -> the matching paths of PKG unpacked under $WORK/PKG (once),
# its copyright file and version copied to $OUT/licenses/.
fetch() {
  local pkg=$1; shift
  local dir=$WORK/$pkg
  if ! ls "$WORK/${pkg}"_*.deb >/dev/null 2>&1; then
    if ! (cd "$WORK" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
      apt_update_once
      (cd "$WORK" && apt-get download -qq "$pkg" >/dev/null 2>&1)
    fi
  fi
  local deb; deb=$(ls "$WORK/${pkg}"_*.deb | head -1)
  mkdir -p "$dir"
  dpkg-deb --fsys-tarfile "$deb" |
    tar -x -C "$dir" --wildcards --no-wildcards-match-slash "./usr/share/doc/$pkg/copyright" 2>/dev/null || true
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"
  cp "$dir/usr/share/doc/$pkg/copyright" "$OUT/licenses/$pkg.copyright" 2>/dev/null ||
    find "$dir" -path '*/doc/*/copyright' -exec cp {} "$OUT/licenses/$pkg.copyright" \; -quit
  printf '%s\t%s\n' "$pkg" "$(dpkg-deb -f "$deb" Version)" > "$OUT/licenses/$pkg.version"
}

todo() { [ ! -e "$OUT/.done/$1" ]; }
done_() { touch "$OUT/.done/$1"; echo "done: $1"; }
slug() { local s=${1##*/}; s=${s%.*}; printf '%s' "$s" | tr -c 'A-Za-z0-9_-' '_'; }
# files DIR NAME-GLOB -> sorted list (one per line) of unique-content files
files() { find "$1" -type f -name "$2" -print0 | sort -z | xargs -0 -r md5sum | awk '!seen[$1]++' | cut -c35-; }
# every N LIST... -> each Nth argument, starting with the first
every() { local n=$1 i=0; shift; for f in "$@"; do [ $((i++ % n)) = 0 ] && printf '%s\n' "$f"; done; }

# excerpt CLASS NAME IN LEN [lossy] -> LEN seconds (from 30 s in, if the file is
# longer than LEN+40 s, else from the start). Lossy input is written as 16-bit.
excerpt() {
  local cls=$1 name=$2 in=$3 len=$4 bits=()
  [ "${5:-}" = lossy ] && bits=(-b 16)
  local dur start=0; dur=$(soxi -D "$in")
  if awk -v d="$dur" -v l="$len" 'BEGIN{exit !(d > l + 40)}'; then start=30; fi
  sox "$in" "${bits[@]}" "$WORK/t.wav" trim "$start" "$len"
  mv "$WORK/t.wav" "$OUT/$cls/$name.wav"
}
# copy CLASS NAME IN -> the whole file (at most 60 s), samples unchanged
copy() { sox "$3" "$WORK/t.wav" trim 0 60; mv "$WORK/t.wav" "$OUT/$1/$2.wav"; }
# concat CLASS PREFIX MAXSEC MAXFILES [lossy] -- FILE... -> the files joined in the
# given order into chunks of at most MAXSEC seconds (a chunk also ends where the
# rate/channels/bits change), at most MAXFILES chunks.
concat() {
  local cls=$1 prefix=$2 maxsec=$3 maxfiles=$4 lossy=$5; shift 6
  local bits=(); [ "$lossy" = lossy ] && bits=(-b 16)
  local chunk=() key= acc=0 n=0 f k d
  flush() {
    [ ${#chunk[@]} -gt 0 ] || return 0
    sox "${chunk[@]}" "${bits[@]}" "$WORK/t.wav" trim 0 60
    mv "$WORK/t.wav" "$OUT/$cls/$prefix-$(printf %02d $n).wav"
    n=$((n + 1)); chunk=(); acc=0
  }
  for f in "$@"; do
    [ "$n" -lt "$maxfiles" ] || break
    k="$(soxi -r "$f")/$(soxi -c "$f")/$(soxi -b "$f")"; d=$(soxi -D "$f")
    if [ "$k" != "$key" ] || awk -v a="$acc" -v d="$d" -v m="$maxsec" 'BEGIN{exit !(a + d > m)}'; then
      flush; key=$k
    fi
    [ "$n" -lt "$maxfiles" ] || break
    chunk+=("$f"); acc=$(awk -v a="$acc" -v d="$d" 'BEGIN{print a + d}')
  done
  flush
}

# SoundFont sample extractor (16-bit samples, stereo pairs joined, no processing).
SF2X=$WORK/sf2x.py
cat > "$SF2X" <<'PY'
import hashlib
import os
import struct
import sys
import wave


def chunks(data, off, end):
    while off + 8 <= end:
        cid, size = struct.unpack_from('<4sI', data, off)
        yield cid, off + 8, size
        off += 8 + size + (size & 1)


def main():
    path, outdir, prefix, max_bytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    min_sec = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:4] == b'RIFF' and data[8:12] == b'sfbk', 'not an sf2 file'
    smpl = shdr = None
    for cid, off, size in chunks(data, 12, len(data)):
        if cid != b'LIST':
            continue
        kind = data[off:off + 4]
        for sid, soff, ssize in chunks(data, off + 4, off + size):
            if kind == b'sdta' and sid == b'smpl':
                smpl = (soff, ssize)
            if kind == b'pdta' and sid == b'shdr':
                shdr = (soff, ssize)
    assert smpl and shdr
    heads = []
    for i in range(shdr[1] // 46 - 1):  # last record is the EOS terminator
        name, start, end, _ls, _le, rate, _pitch, _corr, link, typ = struct.unpack_from(
            '<20sIIIIIBbHH', data, shdr[0] + 46 * i)
        heads.append((name.split(b'\0')[0].decode('latin-1'), start, end, rate, link, typ))

    def pcm(start, end):
        return data[smpl[0] + 2 * start: smpl[0] + 2 * end]

    items, used, seen = [], set(), set()
    for i, (name, start, end, rate, link, typ) in enumerate(heads):
        if i in used or typ & 0x8000 or end <= start or rate < 8000:
            continue
        if (end - start) / rate < min_sec:
            continue
        if typ in (2, 4) and link < len(heads) and link not in used:
            o = heads[link]
            if o[2] - o[1] == end - start and o[3] == rate:
                left, right = (i, link) if typ == 4 else (link, i)
                l, r = pcm(heads[left][1], heads[left][2]), pcm(heads[right][1], heads[right][2])
                inter = bytearray(2 * len(l))
                for k in range(2):
                    inter[k::4] = l[k::2]
                    inter[k + 2::4] = r[k::2]
                used.update((i, link))
                items.append((name, rate, 2, bytes(inter)))
                continue
        used.add(i)
        items.append((name, rate, 1, pcm(start, end)))
    uniq = []
    for it in items:
        h = hashlib.sha1(it[3]).digest()
        if h not in seen:
            seen.add(h)
            uniq.append(it)
    total = sum(len(it[3]) for it in uniq)
    step = max(1.0, total / max_bytes)
    chosen, acc, nxt = [], 0.0, 0.0
    for it in uniq:  # keep an item whenever the running byte count passes the next mark
        if acc >= nxt:
            chosen.append(it)
            nxt += step * len(it[3])
        acc += len(it[3])
    written = 0
    os.makedirs(outdir, exist_ok=True)
    for n, (name, rate, ch, pcmdata) in enumerate(chosen):
        if written + len(pcmdata) > max_bytes:
            break
        safe = ''.join(c if c.isalnum() or c in '-_' else '_' for c in name).strip('_') or 'smp'
        out = os.path.join(outdir, f'{prefix}-{n:04d}-{safe}.wav')
        with wave.open(out, 'wb') as w:
            w.setnchannels(ch)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcmdata)
        written += len(pcmdata)
    print(f'{path}: {len(uniq)} samples, wrote {n + 1 if chosen else 0} ({written} bytes)')


if __name__ == '__main__':
    main()
PY

# ================================================================ music
# 10 s excerpts of every Nth track (decoded Ogg Vorbis -> 16-bit).
music_ogg() {  # PKG STEP PATTERN
  local pkg=$1 step=$2 pat=$3 f
  todo "$pkg" || return 0
  fetch "$pkg" "$pat"
  mapfile -t all < <(files "$WORK/$pkg" '*.ogg')
  mapfile -t sel < <(every "$step" "${all[@]}")
  for f in "${sel[@]}"; do excerpt music "$pkg-$(slug "$f")" "$f" 7 lossy; done
  done_ "$pkg"
}
music_ogg drascula-music 8 '*.ogg'
music_ogg singularity-music 4 '*.ogg'
music_ogg hyperrogue-music 4 './usr/share/hyperrogue/music/*.ogg'
music_ogg planetblupi-music-ogg 4 '*.ogg'
music_ogg frozen-bubble-data 1 './usr/share/games/frozen-bubble/snd/*zik*.ogg'
music_ogg warmux-data 3 './usr/share/games/warmux/music/*.ogg'
music_ogg openclonk-data 2 '*Music*.ogg'
if todo colobot-music; then
  fetch colobot-common-sounds './usr/share/games/colobot/music/*.ogg'
  mapfile -t all < <(files "$WORK/colobot-common-sounds/usr/share/games/colobot/music" '*.ogg')
  mapfile -t sel < <(every 6 "${all[@]}")
  for f in "${sel[@]}"; do excerpt music "colobot-$(slug "$f")" "$f" 7 lossy; done
  done_ colobot-music
fi
if todo gnome-audio; then  # short 44.1 kHz 16-bit PCM jingles, copied unchanged
  fetch gnome-audio './usr/share/sounds/*.wav'
  mapfile -t all < <(files "$WORK/gnome-audio" '*.wav')
  for f in "${all[@]}"; do copy music "gnome-audio-$(slug "$f")" "$f"; done
  done_ gnome-audio
fi

# ================================================================ solo
sf2() {  # NAME PKG PATH-IN-PKG MAX_BYTES
  todo "$1" || return 0
  fetch "$2" ".$3"
  python3 "$SF2X" "$WORK/$2$3" "$OUT/solo" "$1" "$4"
  done_ "$1"
}
sf2 fluidr3 fluid-soundfont-gm /usr/share/sounds/sf2/FluidR3_GM.sf2 14000000
sf2 musescore musescore-general-soundfont-lossless /usr/share/sounds/sf2/MuseScore_General_Full.sf2 14000000
sf2 timgm6mb timgm6mb-soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 3000000
# Red Zeppelin only: Black Pearl is the kit of the held-out hydrogen-drumkits sample.
sf2 avl-redzeppelin avldrums.lv2-soundfont /usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2 6000000
# Not hydrogen-data: its kits are hydrogen's, like the held-out hydrogen-drumkits.
if todo lmms-common; then
  fetch lmms-common './usr/share/lmms/samples/*.ogg'
  S=$WORK/lmms-common/usr/share/lmms/samples
  for d in instruments stringsnpads latin drums basses beats; do
    mapfile -t all < <(files "$S/$d" '*.ogg')
    concat solo "lmms-$d" 20 1 lossy -- "${all[@]}"
  done
  done_ lmms-common
fi

# ================================================================ speech
for lang in es fr it ru; do  # 8 kHz 16-bit PCM telephone prompts, one speaker per language
  pkg=asterisk-core-sounds-$lang-wav
  if todo "$pkg"; then
    fetch "$pkg" './usr/share/asterisk/sounds/*.wav'
    mapfile -t all < <(files "$WORK/$pkg/usr/share/asterisk/sounds" '*.wav')
    mapfile -t sel < <(every 2 "${all[@]}")
    concat speech "asterisk-$lang" 60 5 keep -- "${sel[@]}"
    done_ "$pkg"
  fi
done
if todo asterisk-prompt-it-menardi-wav; then  # second Italian voice pair (8 kHz 16-bit PCM)
  fetch asterisk-prompt-it-menardi-wav './usr/share/asterisk/sounds/*.wav'
  mapfile -t all < <(files "$WORK/asterisk-prompt-it-menardi-wav/usr/share/asterisk/sounds" '*.wav')
  mapfile -t sel < <(every 2 "${all[@]}")
  concat speech it-menardi 60 5 keep -- "${sel[@]}"
  done_ asterisk-prompt-it-menardi-wav
fi
if todo klettres-data; then  # letters/syllables spoken in ~25 languages (Ogg Vorbis)
  fetch klettres-data './usr/share/klettres/*.ogg'
  for d in "$WORK"/klettres-data/usr/share/klettres/*/; do
    lang=$(basename "$d")
    mapfile -t all < <(files "$d" '*.ogg' | while read -r f; do [ "$(soxi -r "$f")" -le 48000 ] && printf '%s\n' "$f"; done)
    [ ${#all[@]} -gt 0 ] || continue  # (a few files are tagged 128 kHz: skipped)
    concat speech "klettres-$lang" 6 1 lossy -- "${all[@]}"
  done
  done_ klettres-data
fi
if todo hedgewars-data; then  # game character voices (en accents, es, pl, ru, uk)
  fetch hedgewars-data './usr/share/games/hedgewars/Data/Sounds/voices/*.ogg'
  for v in Default Default_es Default_pl Default_ru Default_uk British Pirate Russian Singer; do
    mapfile -t all < <(files "$WORK/hedgewars-data/usr/share/games/hedgewars/Data/Sounds/voices/$v" '*.ogg')
    concat speech "hedgewars-$v" 5 1 lossy -- "${all[@]}"
  done
  done_ hedgewars-data
fi
if todo gcin-voice; then  # Mandarin syllables (Zhuyin), every 10th recording
  fetch gcin-voice './usr/share/gcin-voice/ogg/*'
  mapfile -t all < <(files "$WORK/gcin-voice/usr/share/gcin-voice/ogg" '*.ogg')
  mapfile -t sel < <(every 10 "${all[@]}")
  concat speech gcin-zh 30 1 lossy -- "${sel[@]}"
  done_ gcin-voice
fi

# ================================================================ field / effects
MG=/usr/share/games/megaglest
if todo megaglest-ambience; then  # tileset ambience loops (day, night, rain, wind), Ogg
  fetch megaglest-data ".$MG/tilesets/*"
  mapfile -t all < <(files "$WORK/megaglest-data$MG/tilesets" '*.ogg')
  mapfile -t sel < <(every 3 "${all[@]}")
  for f in "${sel[@]}"; do
    t=${f%/sounds/*}; excerpt field "megaglest-${t##*/}-$(slug "$f")" "$f" 6 lossy
  done
  done_ megaglest-ambience
fi
if todo wesnoth-ambience; then
  fetch wesnoth-1.16-data './usr/share/games/wesnoth/1.16/data/core/sounds/ambient/*'
  mapfile -t all < <(files "$WORK/wesnoth-1.16-data/usr/share/games/wesnoth/1.16/data/core/sounds/ambient" '*.ogg')
  for f in "${all[@]}"; do excerpt field "wesnoth-$(slug "$f")" "$f" 6 lossy; done
  done_ wesnoth-ambience
fi
if todo megaglest-wav; then  # unit / building / weather sound effects, 16-bit PCM
  fetch megaglest-data ".$MG/*.wav"
  mapfile -t all < <(files "$WORK/megaglest-data$MG" '*.wav')
  w16=(); for f in "${all[@]}"; do [ "$(soxi -b "$f")" = 16 ] && w16+=("$f"); done
  mapfile -t sel < <(every 3 "${w16[@]}")
  concat field megaglest-sfx 30 8 keep -- "${sel[@]}"
  done_ megaglest-wav
fi
if todo colobot-sfx; then
  fetch colobot-common-sounds './usr/share/games/colobot/sounds/*.wav'
  mapfile -t all < <(files "$WORK/colobot-common-sounds/usr/share/games/colobot/sounds" '*.wav')
  w16=(); for f in "${all[@]}"; do [ "$(soxi -b "$f")" = 16 ] && w16+=("$f"); done
  concat field colobot-sfx 30 6 keep -- "${w16[@]}"
  done_ colobot-sfx
fi
for pkg in bzflag-data pingus-data; do
  if todo "$pkg"; then
    fetch "$pkg" '*.wav'
    mapfile -t all < <(files "$WORK/$pkg" '*.wav')
    concat field "${pkg%-data}-sfx" 30 4 keep -- "${all[@]}"
    done_ "$pkg"
  fi
done

# ================================================================ 8-bit
if todo megaglest-8bit; then
  fetch megaglest-data ".$MG/*.wav"
  mapfile -t all < <(files "$WORK/megaglest-data$MG" '*.wav')
  w8=(); for f in "${all[@]}"; do [ "$(soxi -b "$f")" = 8 ] && w8+=("$f"); done
  concat lowbit megaglest-8bit 30 3 keep -- "${w8[@]}"
  done_ megaglest-8bit
fi
if todo colobot-8bit; then
  fetch colobot-common-sounds './usr/share/games/colobot/sounds/*.wav'
  mapfile -t all < <(files "$WORK/colobot-common-sounds/usr/share/games/colobot/sounds" '*.wav')
  w8=(); for f in "${all[@]}"; do [ "$(soxi -b "$f")" = 8 ] && w8+=("$f"); done
  concat lowbit colobot-8bit 30 3 keep -- "${w8[@]}"
  done_ colobot-8bit
fi
if todo heroes-sound-effects; then
  fetch heroes-sound-effects '*.wav'
  mapfile -t all < <(files "$WORK/heroes-sound-effects" '*.wav')
  concat lowbit heroes-8bit 30 3 keep -- "${all[@]}"
  done_ heroes-sound-effects
fi

# ================================================================ report
for c in music solo speech field lowbit; do
  printf '%-7s %4d files %6.1f MB\n' "$c" "$(find "$OUT/$c" -name '*.wav' | wc -l)" \
    "$(du -sb "$OUT/$c" | awk '{print $1 / 1e6}')"
done
printf 'total: %s\n' "$(du -sh --exclude=licenses "$OUT" | cut -f1)"
