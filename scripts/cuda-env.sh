#!/usr/bin/env bash
# A CUDA 13.0 build environment for `cargo build --release --features cuda`, made from PyPI wheels on a machine that
# has no CUDA toolkit and no NVIDIA driver (Debian/Ubuntu, x86_64, python3).
#
#   source scripts/cuda-env.sh                    # sets up (first time) and exports into the current shell
#   scripts/cuda-env.sh -- cargo build --release --features cuda   # sets up, then runs the command in that env
#
# What it does, once (later runs reuse it):
#   1. a Python venv at $WALKJUMP_CUDA_DIR/venv (default $HOME/.cache/walkjump-cuda) with the CUDA 13.0.x wheels pinned
#      below: the lent GPU machines run driver 580 (CUDA 13.0), which cannot load PTX from a newer toolkit, and an
#      unpinned nvidia-nvvm pulls a newer NVVM whose PTX the 13.0 ptxas rejects;
#   2. a CUDA_HOME at $WALKJUMP_CUDA_DIR/cuda-13.0: bin/ include/ nvvm/ symlinked from the wheels, lib64/ with the
#      unversioned .so names the linker wants;
#   3. a stub libcuda.so (soname libcuda.so.1) exporting every cu* function declared in the wheel's cuda.h, so the
#      binary links without the driver. The stub is for linking only: at run time the real driver's libcuda.so.1 is
#      loaded instead, and a cuda binary does not start on a machine with no NVIDIA driver.
# Then it exports CUDA_HOME, PATH, LIBRARY_PATH, CUDA_COMPUTE_CAP (default 90: H100/H200) and NVCC_CCBIN.
#
# Environment knobs: WALKJUMP_CUDA_DIR (where everything goes), CUDA_COMPUTE_CAP (target GPU, e.g. 80, 89, 90),
# PYTHON (interpreter used for the venv).

_wj_cuda_main() {
  local root="${WALKJUMP_CUDA_DIR:-$HOME/.cache/walkjump-cuda}"
  local py="${PYTHON:-python3}"
  local venv="$root/venv"
  local home="$root/cuda-13.0"
  # Pinned to the CUDA 13.0 line (curand's 13.0 release is numbered 10.4.0).
  local wheels=(
    "nvidia-cuda-nvcc==13.0.88"
    "nvidia-cuda-crt==13.0.88"
    "nvidia-nvvm==13.0.88"
    "nvidia-cuda-nvrtc==13.0.88"
    "nvidia-cuda-runtime==13.0.96"
    "nvidia-cuda-cccl==13.0.85"
    "nvidia-cublas==13.1.0.3"
    "nvidia-curand==10.4.0.35"
  )
  local stamp="$root/.ready-$(printf '%s\n' "${wheels[@]}" | cksum | cut -d' ' -f1)"

  if [ ! -f "$stamp" ]; then
    echo "cuda-env: setting up a CUDA 13.0 build environment in $root" >&2
    mkdir -p "$root" || return 1
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "cuda-env: installing python3-venv" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null || return 1
      else
        echo "cuda-env: error: $py cannot make a venv; install python3-venv" >&2
        return 1
      fi
    fi
    for tool in cc c++; do
      if ! command -v "$tool" >/dev/null 2>&1; then
        echo "cuda-env: error: no '$tool' on PATH (nvcc needs a host compiler: apt-get install g++)" >&2
        return 1
      fi
    done
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "${wheels[@]}" || return 1

    local cu13
    cu13="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')" ||
      return 1
    if [ ! -f "$cu13/include/cuda.h" ] || [ ! -x "$cu13/bin/nvcc" ]; then
      echo "cuda-env: error: the wheels did not provide $cu13/include/cuda.h and $cu13/bin/nvcc" >&2
      return 1
    fi

    rm -rf "$home" && mkdir -p "$home/lib64" || return 1
    ln -s "$cu13/bin" "$home/bin"
    ln -s "$cu13/include" "$home/include"
    [ -d "$cu13/nvvm" ] && ln -s "$cu13/nvvm" "$home/nvvm"
    # Versioned libraries (libfoo.so.13) get the names the linker looks for (libfoo.so) and keep their own.
    local f base
    for f in "$cu13"/lib/lib*.so*; do
      [ -e "$f" ] || continue
      base="$(basename "$f")"
      ln -sf "$f" "$home/lib64/$base"
      ln -sf "$f" "$home/lib64/${base%%.so*}.so"
    done
    for f in "$cu13"/lib/*.a; do
      [ -e "$f" ] && ln -sf "$f" "$home/lib64/$(basename "$f")"
    done

    _wj_cuda_stub "$cu13/include/cuda.h" "$home/lib64" || return 1
    "$home/bin/nvcc" --version | tail -n 2 >&2
    touch "$stamp"
  fi

  export WALKJUMP_CUDA_HOME="$home"
  export CUDA_HOME="$home"
  export CUDA_PATH="$home"
  export CUDA_ROOT="$home"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  export NVCC_CCBIN="${NVCC_CCBIN:-$(command -v c++)}"
  case ":$PATH:" in *":$home/bin:"*) ;; *) export PATH="$home/bin:$PATH" ;; esac
  case ":${LIBRARY_PATH:-}:" in
    *":$home/lib64:"*) ;;
    *) export LIBRARY_PATH="$home/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}" ;;
  esac
  echo "cuda-env: CUDA_HOME=$CUDA_HOME CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
}

# Writes a C file defining every cu* function named in cuda.h, each returning CUDA_ERROR_STUB_LIBRARY, and builds it
# as libcuda.so with soname libcuda.so.1. cuda.h maps many names to versioned ones with #define (cuMemAlloc ->
# cuMemAlloc_v2, and to _ptds/_ptsz under per-thread default streams), so the names are collected from the raw header
# and from `cc -E` of it in both stream modes; driver functions are the identifiers spelled cu[A-Z]... (types are CU...).
_wj_cuda_stub() {
  local header="$1" out="$2"
  local tmp
  tmp="$(mktemp -d)" || return 1
  printf '#include <cuda.h>\n' >"$tmp/names.c"
  cp "$header" "$tmp/raw.h"
  cc -E -P -I"$(dirname "$header")" "$tmp/names.c" >"$tmp/legacy.i" &&
    cc -E -P -D__CUDA_API_PER_THREAD_DEFAULT_STREAM=1 -I"$(dirname "$header")" "$tmp/names.c" >"$tmp/ptds.i" || {
    rm -rf "$tmp"
    return 1
  }
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*' "$tmp/raw.h" "$tmp/legacy.i" "$tmp/ptds.i" | sort -u >"$tmp/names.txt"
  local n
  n="$(wc -l <"$tmp/names.txt")"
  if [ "$n" -lt 100 ]; then
    echo "cuda-env: error: found only $n cu* names in $header" >&2
    rm -rf "$tmp"
    return 1
  fi
  {
    echo '/* Link-time stand-in for the NVIDIA driver library; generated by scripts/cuda-env.sh from cuda.h. */'
    echo '/* Every entry point fails with CUDA_ERROR_STUB_LIBRARY (34); the real libcuda.so.1 replaces it at run time. */'
    while read -r name; do
      echo "int $name(void) { return 34; }"
    done <"$tmp/names.txt"
  } >"$tmp/libcuda_stub.c"
  cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so" "$tmp/libcuda_stub.c" || {
    rm -rf "$tmp"
    return 1
  }
  cp "$tmp/libcuda_stub.c" "$out/libcuda_stub.c"
  echo "cuda-env: stub libcuda.so with $n entry points" >&2
  rm -rf "$tmp"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: export into the caller's shell; do not change its shell options.
  _wj_cuda_main
else
  set -euo pipefail
  _wj_cuda_main
  if [ "${1:-}" = "--" ]; then
    shift
  fi
  if [ $# -gt 0 ]; then
    exec "$@"
  fi
fi
