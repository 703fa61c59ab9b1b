#!/usr/bin/env bash
# Builds the CUDA release binary here (no GPU needed: scripts/cuda-env.sh supplies a CUDA 13.0 toolkit from PyPI and
# a link-time libcuda stub), strips it, and packs what a GPU machine without Rust or network needs to run
# scripts/gpu-check.sh:
#
#   dist/walkjump-gpu/            walkjump (stripped) or, when that is 64 MiB or more, walkjump.gz (gpu-check.sh
#                                 unpacks it), checkpoints/, gpu-check.sh, torch_reference.py, BUILD-INFO, SHA256SUMS
#   dist/walkjump-gpu.tar.gz      the same folder, packed
#
# On the GPU machine: tar xzf walkjump-gpu.tar.gz && bash walkjump-gpu/gpu-check.sh
# (or, with this checkout there: WALKJUMP=dist/walkjump-gpu/walkjump bash scripts/gpu-check.sh).
#
# What a lent GPU machine accepts is at most 64 MiB. The default build is the documented one (`--features cuda`, with
# the desktop app), so it reuses that build; stripped it is about 73 MiB (32 MiB of it candle's compiled CUDA
# kernels), so the bundle carries it gzipped (about 22 MiB) as walkjump.gz. CARGO_FLAGS=--no-default-features gives
# a headless binary without the app, smaller, but a different feature set: a second cold build (about as long as the
# first, most of it nvcc on candle's kernels).
#
# Environment: CARGO_TARGET_DIR (default: cargo's), FEATURES (default "cuda"), CARGO_FLAGS (default ""),
# CUDA_COMPUTE_CAP (default 90: H100/H200), DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST="${DIST:-$ROOT/dist}"
FEATURES="${FEATURES:-cuda}"
read -r -a EXTRA <<<"${CARGO_FLAGS:-}"
LIMIT=$((64 * 1024 * 1024))

# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh

echo "== cargo build --release --locked --features $FEATURES ${EXTRA[*]}"
start=$(date +%s)
cargo build --release --locked --features "$FEATURES" "${EXTRA[@]}"
echo "build took $(($(date +%s) - start)) s"
target="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/release/walkjump"

out="$DIST/walkjump-gpu"
rm -rf "$out" "$DIST/walkjump-gpu.tar.gz"
mkdir -p "$out/checkpoints"
cp "$bin" "$out/walkjump"
strip "$out/walkjump"
size=$(stat -c %s "$out/walkjump")
echo "stripped binary: $size bytes ($((size / 1024 / 1024)) MiB)"
# The binary must name the driver library it will find there, not the stub it was linked against.
if ! readelf -d "$out/walkjump" | grep -q 'NEEDED.*\[libcuda\.so\.1\]'; then
  echo "error: the binary does not link libcuda.so.1 (was it built with --features cuda?)" >&2
  exit 1
fi
# Smoke test without a GPU: with the link stub standing in for the driver (it loads, but every call fails with
# CUDA_ERROR_STUB_LIBRARY), the binary must start and fall back to the CPU with a one-line note.
stub="$(mktemp -d)"
ln -s "$CUDA_HOME/lib64/libcuda.so" "$stub/libcuda.so.1"
smoke_err="$(LD_LIBRARY_PATH="$stub:$CUDA_HOME/lib64" "$out/walkjump" sample --device cuda --steps 10 --chains 2 \
  --out "$stub/smoke.png" 2>&1 >/dev/null)" || {
  echo "error: the cuda binary failed its smoke test against the stub driver: $smoke_err" >&2
  exit 1
}
rm -rf "$stub"
echo "smoke test (stub driver, no GPU): $(grep '^note:' <<<"$smoke_err")"
if [ "$(grep -c '^note: CUDA device 0 is not usable' <<<"$smoke_err")" != 1 ]; then
  echo "error: expected one fallback note, got: $smoke_err" >&2
  exit 1
fi
if [ "$size" -ge "$LIMIT" ]; then
  gzip -6 "$out/walkjump"
  gz=$(stat -c %s "$out/walkjump.gz")
  echo "over 64 MiB: carried as walkjump.gz ($gz bytes, $((gz / 1024 / 1024)) MiB); gpu-check.sh unpacks it"
  if [ "$gz" -ge "$LIMIT" ]; then
    echo "error: even gzipped the binary is $gz bytes, over the 64 MiB a lent GPU machine accepts" >&2
    exit 1
  fi
  bin_name=walkjump.gz
else
  bin_name=walkjump
fi
cp checkpoints/*.safetensors checkpoints/MODELS.md "$out/checkpoints/"
cp scripts/gpu-check.sh bench/torch_reference.py "$out/"
{
  echo "walkjump $(git describe --always --dirty 2>/dev/null || echo unknown), built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cargo build --release --locked --features $FEATURES ${EXTRA[*]}"
  echo "rustc: $(rustc --version)"
  echo "nvcc: $(nvcc --version | tail -n 1)"
  echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
  echo "stripped size: $size bytes; bundled as $bin_name"
  echo "needs at run time (readelf NEEDED):"
  readelf -d "$bin" | awk -F'[][]' '/NEEDED/ {print "  " $2}'
  echo "libcuda.so.1 comes from the NVIDIA driver (580 or newer for CUDA 13.0); the CUDA 13 libraries from"
  echo "LD_LIBRARY_PATH or the machine's nvidia wheels (gpu-check.sh finds those of a PyTorch install)."
} >"$out/BUILD-INFO"
(cd "$out" && sha256sum "$bin_name" checkpoints/* gpu-check.sh torch_reference.py >SHA256SUMS)
tar -C "$DIST" -czf "$DIST/walkjump-gpu.tar.gz" walkjump-gpu
echo "== $out ($(du -sh "$out" | cut -f1)), $DIST/walkjump-gpu.tar.gz ($(du -sh "$DIST/walkjump-gpu.tar.gz" | cut -f1))"
cat "$out/BUILD-INFO"
