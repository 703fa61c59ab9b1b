#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ (git-ignored) with the seed inputs: the crafted corpus of tests/corpus/ (valid and
# broken files alike; regenerate it with tests/corpus/make.py) and, for the IDX targets, the bundled digits.
set -euo pipefail
cd "$(dirname "$0")"
src=../tests/corpus
mkdir -p corpus/checkpoint corpus/idx_images corpus/idx_labels corpus/run_json
cp "$src"/*.safetensors corpus/checkpoint/
cp "$src"/*.idx "$src"/*.idx.gz corpus/idx_images/
cp "$src"/*.idx "$src"/*.idx.gz corpus/idx_labels/
cp ../assets/mnist-10k-images-idx3-ubyte.gz corpus/idx_images/
cp ../assets/mnist-10k-labels-idx1-ubyte.gz corpus/idx_labels/
# The label file is small enough to be a useful plain seed too.
gzip -dc ../assets/mnist-10k-labels-idx1-ubyte.gz >corpus/idx_labels/mnist-10k-labels-idx1-ubyte
cp "$src"/*.json corpus/run_json/
for t in checkpoint idx_images idx_labels run_json; do
  echo "$t: $(ls corpus/$t | wc -l) seed files"
done
mkdir -p corpus/onnx
cp "$src"/onnx-*.onnx ../tests/fixtures/onnx/*.onnx corpus/onnx/
echo "onnx: $(ls corpus/onnx | wc -l) seed files"
