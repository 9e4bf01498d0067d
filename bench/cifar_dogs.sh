#!/usr/bin/env bash
# Issue 15, part 6: dogs end to end on CIFAR-10's 5,000 dog photos (preset cifar10-dogs).
# Trains for a wall-clock budget, then:
#   - judges 10,000 images with the shipped CIFAR-10 classifier against the 1,000 test dogs
#     (domain FID/KID) and reports the dog share: the part of them the classifier calls "dog"
#     (and, for scale, the part of the real test dogs it calls "dog");
#   - writes a Kaggle "Generative Dog Images" zip (10,000 PNGs at 64x64) and an 8x8 grid.
# `ganforge serve --run RUN` then shows "This dog does not exist".
#
# Usage: bench/cifar_dogs.sh CIFAR_DIR OUT [TIME] [SETS...]
#   SETS: extra `train --set` overrides, e.g. model.image_size=64 for the Kaggle size (the
#   32x32 photos upscaled) or train.diffaugment="" to compare without DiffAugment.
# Writes OUT/run/ (the run folder, its eval/), OUT/dogs.zip, OUT/grid.png, OUT/summary.json.
set -euo pipefail
cifar=${1:?CIFAR_DIR}; out=${2:?OUT}; time=${3:-30m}; shift $(( $# < 3 ? $# : 3 ))
bin=${GANFORGE:-target/release/ganforge}
mkdir -p "$out"
sets=(); for s in "$@"; do sets+=(--set "$s"); done
"$bin" train --preset cifar10-dogs --data "cifar10:$cifar/train" "${sets[@]}" --steps 10000000 --time "$time" --out "$out/run" \
  > "$out/train.log" 2>&1
run=$(ls -d "$out/run"/0* | tail -1)
"$bin" eval --run "$run" --features cifar --metrics fid,kid,coverage --n 10000 --real "cifar10:$cifar/test" > "$out/eval.txt" 2>&1
"$bin" sample --run "$run" --n 64 --grid --out "$out/grid.png"
"$bin" sample --run "$run" --kaggle "$out/dogs.zip"
# Coverage's histograms: the classifier's calls on the generated images and on the real test
# dogs (a run that keeps one class has labels that are not the classifier's ten, so eval
# counts the classifier's calls on the real images): the real dogs' share is the yardstick.
python3 - "$run" "$out" <<'EOF'
import glob, json, sys
run, out = sys.argv[1], sys.argv[2]
ev = json.load(open(sorted(glob.glob(f"{run}/eval/step_*.json"))[-1]))
m = ev["metrics"]
hist = m["coverage"]["histogram"]
dog = 5  # CIFAR-10's classes: airplane automobile bird cat deer dog frog horse ship truck
summary = {"checkpoint": ev["checkpoint"], "fid_cifar": round(m["fid"]["value"], 1), "kid_cifar": round(m["kid"]["mean"], 2),
           "dog_share": round(hist[dog] / sum(hist), 4), "histogram": hist,
           "real_dog_share": round(m["coverage"]["real_histogram"][dog] / sum(m["coverage"]["real_histogram"]), 4), "n_real": ev["n_real"]}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary))
EOF
