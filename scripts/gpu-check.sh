#!/usr/bin/env bash
# The GPU round trip, on a machine with an NVIDIA GPU and CUDA 13 libraries
# (no Rust toolchain needed):
#   scripts/gpu-check.sh DIR
# DIR holds `lmic` (built by scripts/cuda-build.sh), optionally `device-tests`
# (tests/device.rs built the same way: `scripts/cuda-build.sh test --release
# --features cuda --test device --no-run`), and wav/*.wav. For each WAV:
# integer files made on the CPU and on the GPU must be the same bytes, each
# decoded on the other side must give the WAV back byte for byte, and the
# float device pass (--forward float --device cuda) must round-trip on the
# GPU (files up to FLOAT_MAX_SECONDS seconds, default 2). Prints a table of
# sizes and times (× real time); exits non-zero on any mismatch.
set -uo pipefail
dir=${1:?usage: scripts/gpu-check.sh DIR}
lmic=$dir/lmic
# The CUDA libraries lmic links: the system's, else those pip installed
# (PyTorch's wheels).
libs=$(find /usr /opt \( -name 'libcublas.so.13' -o -name 'libcurand.so.10' -o -name 'libnvrtc.so.13' \
  -o -name 'libcublasLt.so.13' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
[ -d /usr/local/nvidia/lib64 ] && libs="$libs:/usr/local/nvidia/lib64"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L || true
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
if ldd "$lmic" | grep 'not found'; then
  echo "gpu-check: libraries missing (above)" >&2
  exit 1
fi
fail=0
if [ -x "$dir/device-tests" ]; then
  # The integer tests take the device from LMIC_TEST_DEVICE; the float
  # ones run candle's CPU backend, already tested where the build ran.
  echo "== tests/device.rs (integer_*) with LMIC_TEST_DEVICE=cuda"
  LMIC_TEST_DEVICE=cuda "$dir/device-tests" integer_ --test-threads=1 || fail=1
fi
work=$(mktemp -d)
now() { date +%s.%N; }
# Runs a command, printing its seconds; a failure marks the check failed.
timed() {
  local t0
  t0=$(now)
  if ! "$@" 2>"$work/err"; then
    echo "FAILED: $* ($(tail -1 "$work/err"))" >&2
    fail=1
  fi
  awk "BEGIN { print $(now) - $t0 }"
}
same() {
  cmp -s "$1" "$2" || {
    echo "MISMATCH: $1 vs $2" >&2
    fail=1
  }
}
printf '%s\n' "| file | seconds | integer bytes | compress cpu / gpu (s) | decompress cpu / gpu (s) | gpu × real time (c / d) | float gpu bytes | float gpu c / d (s) |"
printf '%s\n' "|---|---|---|---|---|---|---|---|"
for f in "$dir"/wav/*.wav; do
  n=$(basename "$f" .wav)
  secs=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(round(w.getnframes()/w.getframerate(),2))" "$f")
  cc=$(timed "$lmic" compress -q -f "$f" "$work/$n.cpu.lmc")
  cg=$(timed timeout 300 "$lmic" compress -q -f --device cuda "$f" "$work/$n.gpu.lmc")
  same "$work/$n.cpu.lmc" "$work/$n.gpu.lmc"
  dg=$(timed timeout 300 "$lmic" decompress -q -f --device cuda "$work/$n.cpu.lmc" "$work/$n.g.wav")
  dc=$(timed "$lmic" decompress -q -f "$work/$n.gpu.lmc" "$work/$n.c.wav")
  same "$f" "$work/$n.g.wav"
  same "$f" "$work/$n.c.wav"
  # The float device pass decodes with a full pass per position: short
  # files only.
  fc=0 fd=0
  if awk "BEGIN { exit !($secs <= ${FLOAT_MAX_SECONDS:-2}) }"; then
    fc=$(timed timeout 300 "$lmic" compress -q -f --device cuda --forward float "$f" "$work/$n.float.lmc")
    fd=$(timed timeout 300 "$lmic" decompress -q -f --device cuda "$work/$n.float.lmc" "$work/$n.f.wav")
    same "$f" "$work/$n.f.wav"
  fi
  x() { awk "BEGIN { printf \"%.2f\", $secs / $1 }"; }
  printf '| %s | %s | %s | %.2f / %.2f | %.2f / %.2f | %s / %s | %s | %.2f / %.2f |\n' "$n" "$secs" \
    "$(stat -c %s "$work/$n.gpu.lmc")" "$cc" "$cg" "$dc" "$dg" "$(x "$cg")" "$(x "$dg")" \
    "$(stat -c %s "$work/$n.float.lmc" 2>/dev/null || echo -)" "$fc" "$fd"
done
[ $fail -eq 0 ] && echo "gpu-check: all round trips byte for byte" || echo "gpu-check: FAILED"
exit $fail
