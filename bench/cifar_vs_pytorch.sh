#!/usr/bin/env bash
# Issue 15, part 4: ganforge's cifar10 preset against PyTorch's DCGAN example at equal wall time
# on this machine, one after the other (never side by side: each gets the whole machine).
# Both are judged the same way: `ganforge fid` with the shipped CIFAR-10 classifier's features
# (a domain FID, not an Inception FID), 10,000 images of each against the 10,000 test photos.
#
# Usage: bench/cifar_vs_pytorch.sh CIFAR_DIR OUT [TIME] [SETS...]
#   TIME: 30m (the issue's first mark) or 2h; SETS: extra `train --set` overrides for ganforge.
#   PYTHON: a Python with torch and pillow (default python3); ONLY=ganforge trains and judges
#   ganforge alone (a recipe against a PyTorch result already in OUT).
# Writes OUT/pytorch/ (result.json, grid.png, images/), OUT/ganforge/ (the run folder) and
# OUT/fid-*.json, and prints one line per contender.
set -euo pipefail
cifar=${1:?CIFAR_DIR}; out=${2:?OUT}; time=${3:-30m}; shift $(( $# < 3 ? $# : 3 ))
cifar=$(cd "$cifar" && pwd)
bin=${GANFORGE:-target/release/ganforge}; py=${PYTHON:-python3}
mkdir -p "$out"; out=$(cd "$out" && pwd)  # absolute: the PyTorch side runs from bench/
minutes=$(python3 -c "import re,sys; t=sys.argv[1]; print(sum(int(n)*{'h':60,'m':1,'s':1/60}[u] for n,u in re.findall(r'(\d+)([hms])',t)))" "$time")

if [ "${ONLY:-}" != ganforge ]; then
  (cd "$(dirname "$0")" && "$py" pytorch_dcgan_train.py "$cifar/train" "$out/pytorch" --minutes "$minutes" --threads 2) \
    > "$out/pytorch.log" 2>&1
fi
sets=(); for s in "$@"; do sets+=(--set "$s"); done
RAYON_NUM_THREADS=2 "$bin" train --preset cifar10 --data "cifar10:$cifar/train" "${sets[@]}" --steps 10000000 --time "$time" \
  --out "$out/ganforge" > "$out/ganforge.log" 2>&1
run=$(ls -d "$out/ganforge"/0* | tail -1)

judge() { "$bin" fid --features cifar --metrics fid,kid,coverage --n 10000 --json "$1" "cifar10:$cifar/test"; }
if [ "${ONLY:-}" != ganforge ]; then
  judge "$out/pytorch/images" > "$out/fid-pytorch.json"
  judge "$out/pytorch/images_train_mode" > "$out/fid-pytorch-train-mode.json"
fi
judge "$run" > "$out/fid-ganforge.json"
# The raw G of the last checkpoint too: G's average lags a G that is still improving fast.
last=$(ls -d "$run"/checkpoints/step_* | tail -1)
[ -f "$last/g_ema.safetensors" ] && judge "$last/g.safetensors" > "$out/fid-ganforge-raw-g.json"
for f in "$out"/fid-*.json; do echo "$(basename "$f" .json): $(cat "$f")"; done
[ -f "$out/pytorch/result.json" ] && echo "pytorch: $(tr -d '\n ' < "$out/pytorch/result.json")"
echo "ganforge: $(grep -o 'stopped at step [0-9]*' "$out/ganforge.log" || tail -n 1 "$out/ganforge.log")"
