#!/usr/bin/env bash
# Builds lmic with `--features cuda` on a machine with no CUDA toolkit and no
# GPU (CI, a laptop): nvcc, the headers and the libraries to link against come
# from NVIDIA's PyPI wheels, pinned to CUDA 13.0 (the GPU machine's driver is
# 13.0; newer nvvm wheels emit PTX its ptxas refuses). libcuda, which only a
# driver installs, is linked against a stub naming its symbols; the driver's
# own library is loaded in its place at run time.
#   scripts/cuda-build.sh [CARGO ARGS...]      default: build --release --features cuda
#   scripts/cuda-build.sh loads BINARY         runs `BINARY --version` with every
#     symbol it imports bound at load (LD_BIND_NOW) from the wheels' libraries
#     and the driver stub: the link's check on a machine without a driver
# (CI runs `build --features cuda --all-targets` with LMIC_CUDA_STUB_KERNELS=1:
# every Rust crate compiled and linked, candle's CUDA kernels not compiled;
# without it they are compiled by nvcc too. `check` needs none of the
# libraries' gigabyte.)
# CUDA_COMPUTE_CAP picks the PTX target (default 90: H100/H200). The toolkit
# goes to target/cuda-toolkit (about 1.2 GB), the build to target/cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${LMIC_CUDA_TOOLKIT:-$PWD/target/cuda-toolkit}
[ $# -gt 0 ] || set -- build --release --features cuda
pip() {
  [ -x "$root/venv/bin/pip" ] || python3 -m venv "$root/venv"
  "$root/venv/bin/pip" install -q --disable-pip-version-check "$@"
}
# The compiler and headers (candle's kernels are compiled by its build script).
if [ ! -e "$root/compiler.ok" ]; then
  pip nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
  touch "$root/compiler.ok"
fi
cu=$(echo "$root"/venv/lib/python3*/site-packages/nvidia/cu13)
[ -x "$cu/bin/nvcc" ] || { echo "cuda-build: no nvcc under $cu" >&2; exit 1; }
link="$root/link"
if [ "$1" = loads ]; then
  [ $# -eq 2 ] || { echo "usage: cuda-build.sh loads BINARY" >&2; exit 2; }
  [ -e "$link/libcuda.so.1" ] || { echo "cuda-build: build first (no $link/libcuda.so.1)" >&2; exit 1; }
  LD_BIND_NOW=1 LD_LIBRARY_PATH="$link:$cu/lib" "$2" --version
  exit
fi
if [ "$1" != check ]; then
  # The libraries to link against (about 1 GB; `check` needs none).
  if [ ! -e "$root/libraries.ok" ]; then
    pip nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.5.25
    touch "$root/libraries.ok"
  fi
  # Unversioned names for the linker, and the driver stub: every cu*
  # function cudarc's driver bindings declare, as an empty function in a
  # library whose soname is the driver's.
  mkdir -p "$link"
  for l in nvrtc.so.13 cublas.so.13 cublasLt.so.13 cudart.so.13 curand.so.10; do
    ln -sf "$cu/lib/lib$l" "$link/lib${l%.so.*}.so"
  done
  if [ ! -e "$link/libcuda.so" ]; then
    cudarc=$(cargo metadata --format-version 1 --features cuda |
      python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')
    grep -hoP '^\s+fn \Kcu\w+(?=\()' "$(dirname "$cudarc")/src/driver/sys/mod.rs" | sort -u |
      sed 's/.*/void &(void) {}/' >"$link/cuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda_stub.c"
  fi
  # The name the loader looks for (for `loads`; a GPU machine's own driver
  # library takes its place there).
  ln -sf libcuda.so "$link/libcuda.so.1"
fi

if [ "${LMIC_CUDA_STUB_KERNELS:-0}" = 1 ]; then
  # CI's build: every Rust crate of the CUDA build compiled, lmic's own CUDA
  # code included, and linked against the wheels' libraries and the driver
  # stub, without compiling candle's CUDA kernels (a pinned upstream
  # release; with them CI's CUDA stage took 22 minutes on 2 cores). A
  # stand-in answers nvcc's queries with the real one and writes each output
  # empty; its own target directory keeps the empty kernels away from any
  # real build, and a binary from it fails on its first kernel launch: it
  # proves the build and the link, nothing else.
  cat >"$root/nvcc-stub" <<'STUB'
#!/bin/sh
# nvcc's queries go to the real one; a compile writes its output empty:
# -o FILE, or --output-directory DIR with the source's name and .ptx.
case " $* " in *" --version "* | *" --list-gpu-code "*) exec "$REAL_NVCC" "$@" ;; esac
out= dir= src=
while [ $# -gt 0 ]; do
  case $1 in -o) out=$2; shift ;; --output-directory) dir=$2; shift ;; *.cu) src=$1 ;; esac
  shift
done
[ -n "$out" ] || out=$dir/$(basename "$src" .cu).ptx
: >"$out"
STUB
  chmod +x "$root/nvcc-stub"
  export NVCC="$root/nvcc-stub" REAL_NVCC="$cu/bin/nvcc" CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda-stub}
fi
export PATH="$cu/bin:$PATH" CUDA_ROOT="$cu" CUDA_PATH="$cu" CUDA_HOME="$cu"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH="$link${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$link"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
cargo "$@"
