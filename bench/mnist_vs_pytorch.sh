#!/usr/bin/env bash
# Issue 15, part 3 on digits: ganforge's `mnist` preset (the default run) against PyTorch's DCGAN
# example at equal wall time on this machine, one after the other, each with the whole machine.
# PyTorch runs twice: at the example's widths (64) and at the preset's (32, the same model as
# ganforge's). All are judged the same way by the shipped LeNet (`ganforge fid --features lenet`:
# a domain FID, never an Inception one; KID; the Inception Score analogue on LeNet's classes;
# class coverage as LeNet calls each set), 10,000 images each against MNIST's 10,000 test digits
# resized to 32x32 as both trainers see them (bilinear, PIL's): against the 28x28 files the
# round trip 32 -> 28 alone adds about 38 to every FID (real 32x32 training digits against
# them: 37.9; against the 32x32 test digits: 0.8).
#
# Usage: bench/mnist_vs_pytorch.sh OUT [TIME] [SETS...]
#   TIME: a `train --time` duration (default 5m, the preset's few minutes); SETS: extra
#   `train --set` overrides for ganforge (a recipe to try; BENCHMARKS.md's rows of the preset of
#   before 2026-12-04 add train.lr_d=2e-4 train.lr_g=2e-4 to theirs).
#   PYTHON: a Python with torch, numpy and pillow (default python3); ONLY=ganforge skips PyTorch;
#   ONLY=judge trains nothing and judges what OUT holds.
# Writes OUT/pytorch-w64/, OUT/pytorch-w32/ (result.json, grid.png, images/), OUT/ganforge/ (the
# run folder), OUT/judge-*.json, OUT/ganforge-checkpoints.jsonl (the raw G of each checkpoint
# the run kept), and prints one line per contender.
set -euo pipefail
out=${1:?OUT}; time=${2:-5m}; shift $(( $# < 2 ? $# : 2 ))
bin=${GANFORGE:-target/release/ganforge}; py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"; out=$(cd "$out" && pwd)  # absolute: the PyTorch side runs from bench/
minutes=$(python3 -c "import re,sys; t=sys.argv[1]; print(sum(int(n)*{'h':60,'m':1,'s':1/60}[u] for n,u in re.findall(r'(\d+)([hms])',t)))" "$time")
real="$out/mnist-test-32px"
[ -d "$real" ] || (cd "$root/bench" && "$py" -c "
import os, sys; from PIL import Image; from pytorch_dcgan_train import load_mnist
x, _ = load_mnist(sys.argv[1], 32); os.makedirs(sys.argv[2])
for i, a in enumerate(x[:, 0].numpy()): Image.fromarray(a).save(os.path.join(sys.argv[2], f'{i:05d}.png'))
" "$root/data/mnist/t10k-images-idx3-ubyte.gz" "$real")
judge() { "$bin" fid --features lenet --metrics fid,kid,is,coverage --n 10000 --json "$1" "$real"; }

case "${ONLY:-}" in judge | ganforge) ;; *)
  for w in 64 32; do
    (cd "$root/bench" && "$py" pytorch_dcgan_train.py --mnist "$root/data/mnist/train-images-idx3-ubyte.gz" "$out/pytorch-w$w" \
      --width "$w" --minutes "$minutes" --threads 2) > "$out/pytorch-w$w.log" 2>&1
  done ;;
esac
if [ "${ONLY:-}" != judge ]; then
  sets=(); for s in "$@"; do sets+=(--set "$s"); done
  RAYON_NUM_THREADS=2 "$bin" train --preset mnist "${sets[@]}" --steps 10000000 --time "$time" --out "$out/ganforge" > "$out/ganforge.log" 2>&1
fi
for w in 64 32; do
  [ -d "$out/pytorch-w$w/images" ] || continue
  judge "$out/pytorch-w$w/images" > "$out/judge-pytorch-w$w.json"
  judge "$out/pytorch-w$w/images_train_mode" > "$out/judge-pytorch-w$w-train-mode.json"
done
run=$(ls -d "$out/ganforge"/0* | tail -1)
judge "$run" > "$out/judge-ganforge.json"
# Each kept checkpoint's raw G too: one final step is a noisy sample of a GAN's progress.
for c in "$run"/checkpoints/step_*; do
  echo "{\"step\":$((10#${c##*step_})),\"g\":\"g.safetensors\",\"metrics\":$(judge "$c/g.safetensors" 2>/dev/null)}"
done > "$out/ganforge-checkpoints.jsonl"

for f in "$out"/judge-*.json; do echo "$(basename "$f" .json): $(cat "$f")"; done
for w in 64 32; do [ -f "$out/pytorch-w$w/result.json" ] && echo "pytorch-w$w: $(tr -d '\n ' < "$out/pytorch-w$w/result.json")"; done
echo "ganforge: $(grep -o 'stopped at step [0-9]*' "$out/ganforge.log" || tail -n 1 "$out/ganforge.log")"
