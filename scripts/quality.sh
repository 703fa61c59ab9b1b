#!/usr/bin/env bash
# Measures what checkpoints/MODELS.md reports: the test loss of every bundled checkpoint (walkjump eval on the bundled
# test split, seed 0) and the quality checks of the training issue. Usage: scripts/quality.sh > quality.txt
set -euo pipefail
cd "$(dirname "$0")/.."
WJ=${WALKJUMP:-"cargo run --quiet --"}
out=${OUT:-target/quality}
mkdir -p "$out"
for f in checkpoints/*.safetensors; do
  echo "== walkjump eval -c $f"
  $WJ eval -c "$f"
done
echo "== walk-jump from uniform noise, sigma = 1 DEEN, one chain of 2000 steps, classes by the bundled classifier"
$WJ sample -c checkpoints/deen-mlp-s1.0.safetensors --steps 2000 --every 10 --chains 4 --seed 0 --out "$out/walkjump-s1.png"
if [ -f checkpoints/uvb-conv-s1.0.safetensors ]; then
  echo "== the same with UVB sigma = 1"
  $WJ sample -c checkpoints/uvb-conv-s1.0.safetensors --steps 2000 --every 10 --chains 4 --seed 0 --out "$out/walkjump-uvb-s1.png"
fi
if [ -f checkpoints/deen-mlp-s0.3.safetensors ]; then
  echo "== NEBULA from uniform noise, DEEN sigma = 0.3, 64 starts"
  $WJ nebula -c checkpoints/deen-mlp-s0.3.safetensors --starts 64 --max-steps 3000 --tol 0.1 --seed 0 --out "$out/nebula-s0.3.png" --gallery "$out/nebula-s0.3-gallery.png"
fi
