#!/usr/bin/env bash
# Trains every bundled checkpoint on the bundled training split, one after another (2 cores: one run at a time).
# Usage: scripts/train-bundled.sh [NAME ...]   (default: all; logs go to checkpoints/logs/NAME.log)
# WALKJUMP=path/to/walkjump overrides the binary (default: cargo run --release).
set -euo pipefail
cd "$(dirname "$0")/.."
WJ=${WALKJUMP:-"cargo run --quiet --"}
mkdir -p checkpoints/logs

declare -A CMD
# The default model: 80 epochs at 1e-3, then resumed to 120 at 3e-4 and to 160 at 1e-4 (how the bundled file was made;
# the last stage stores the recommended walk, underdamped Algorithm 1, that lets half the chains see all ten classes).
CMD[deen-mlp-s1.0]='train --kind deen --sigma 1.0 --epochs 80 --batch 128 --lr 1e-3 --seed 0 --arch {"net":{"type":"mlp","hidden":[1024,1024]},"quadratic":true,"shell_scale":3.0}'
CMD[deen-mlp-s1.0-resume1]='train --kind deen --sigma 1.0 --epochs 120 --batch 128 --lr 3e-4 --seed 0 --arch {"net":{"type":"mlp","hidden":[1024,1024]},"quadratic":true,"shell_scale":3.0} --resume checkpoints/deen-mlp-s1.0.safetensors'
CMD[deen-mlp-s1.0-resume2]='train --kind deen --sigma 1.0 --epochs 160 --batch 128 --lr 1e-4 --seed 0 --arch {"net":{"type":"mlp","hidden":[1024,1024]},"quadratic":true,"shell_scale":3.0} --sampler {"sampler":{"kind":"sachs","delta":0.3,"gamma":0.5,"u":1.0},"every":10} --resume checkpoints/deen-mlp-s1.0.safetensors'
CMD[classifier]="train --kind classifier --epochs 12 --batch 128 --lr 5e-4 --seed 2"
CMD[deen-mlp-s0.3]="train --kind deen --sigma 0.3 --epochs 30 --batch 128 --lr 1e-3 --seed 3"
CMD[uvb-conv-s1.0]='train --kind uvb --sigma 1.0 --epochs 40 --batch 128 --lr 3e-4 --seed 4 --arch {"net":{"type":"conv","channels":[32,64,128],"strides":[1,2,2],"kernel":3,"fc":[200]},"decoder":[2000],"latent":100}'
CMD[sigma-vae-s0.9]="train --kind sigma-vae --sigma 0.9 --epochs 30 --batch 128 --lr 1e-3 --seed 5"
CMD[vae-bernoulli]="train --kind vae --sigma 1.0 --epochs 30 --batch 128 --lr 1e-3 --seed 6"
CMD[deen-conv-s0.3]='train --kind deen --sigma 0.3 --epochs 16 --batch 128 --lr 3e-4 --seed 9 --arch {"net":{"type":"conv","channels":[32,64,128],"strides":[1,2,2],"kernel":3,"fc":[256]},"quadratic":true}'
CMD[deen-conv-s0.3-long]='train --kind deen --sigma 0.3 --epochs 40 --batch 128 --lr 3e-4 --seed 9 --arch {"net":{"type":"conv","channels":[32,64,128],"strides":[1,2,2],"kernel":3,"fc":[256]},"quadratic":true}'
CMD[ebm-vae-s0.3]="train --kind ebm-vae --sigma 0.3 --epochs 30 --batch 128 --lr 1e-3 --seed 8"
# Seed 002's U-Net MDAE on the layer graph (scripts/arch/mdae-unet2-1x4.json, 915k parameters): 20 epochs at 1e-3,
# resumed to 34 at 3e-4 and to 44 at 1e-4 (how the bundled file was made, about 95 s per epoch on 2 cores); the last
# stage stores the recommended walk (Sachs 0.7 / 0.35 / 1). The 204k-parameter U-Net it replaced:
# checkpoints/logs/mdae-unet-small-1x4-s1.0.log and MODELS.md.
CMD[mdae-unet-1x4-s1.0]='train --kind mdae --sigma 1.0 --measurements 4 --epochs 20 --batch 128 --lr 1e-3 --seed 7 --arch @scripts/arch/mdae-unet2-1x4.json --sampler {"sampler":{"kind":"sachs","delta":1.0,"gamma":0.25,"u":1.0},"every":10}'
CMD[mdae-unet-1x4-s1.0-resume]='train --kind mdae --sigma 1.0 --measurements 4 --epochs 34 --batch 128 --lr 3e-4 --seed 7 --arch @scripts/arch/mdae-unet2-1x4.json --sampler {"sampler":{"kind":"sachs","delta":1.0,"gamma":0.25,"u":1.0},"every":10} --resume checkpoints/mdae-unet-1x4-s1.0.safetensors'
CMD[mdae-unet-1x4-s1.0-resume2]='train --kind mdae --sigma 1.0 --measurements 4 --epochs 44 --batch 128 --lr 1e-4 --seed 7 --arch @scripts/arch/mdae-unet2-1x4.json --sampler {"sampler":{"kind":"sachs","delta":0.7,"gamma":0.35,"u":1.0},"every":10} --resume checkpoints/mdae-unet-1x4-s1.0.safetensors'
ORDER=(deen-mlp-s1.0 deen-mlp-s1.0-resume1 deen-mlp-s1.0-resume2 classifier deen-mlp-s0.3 deen-conv-s0.3 deen-conv-s0.3-long uvb-conv-s1.0 sigma-vae-s0.9 vae-bernoulli ebm-vae-s0.3 mdae-unet-1x4-s1.0 mdae-unet-1x4-s1.0-resume mdae-unet-1x4-s1.0-resume2)

names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ORDER[@]}")
for name in "${names[@]}"; do
  args=${CMD[$name]:?unknown checkpoint $name}
  out=${name%-resume*}
  echo "== $name: walkjump $args --out checkpoints/$out.safetensors"
  # shellcheck disable=SC2086
  if [ "$out" = "$name" ]; then log=(tee "checkpoints/logs/$out.log"); else log=(tee -a "checkpoints/logs/$out.log"); fi
  $WJ $args --out "checkpoints/$out.safetensors" 2>&1 | "${log[@]}"
done
