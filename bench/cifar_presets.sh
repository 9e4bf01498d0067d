#!/usr/bin/env bash
# Issue 15, part 3: which training recipe gives the best CIFAR-10 images per CPU-hour?
#
# Runs the candidate recipes side by side, one thread each, for the same wall time, then judges
# every run with the shipped CIFAR-10 classifier (a domain FID/KID on 10,000 images against the
# 10,000 test photos, and class coverage). Side by side, each candidate gets the same share of
# the machine at the same moments, so the ranking is fair even while the machine does other work;
# the absolute quality is that of a shorter run on the whole machine.
#
# Usage: bench/cifar_presets.sh CIFAR_DIR OUT [TIME] [DATA_SUFFIX]
#   CIFAR_DIR holds train/ and test/ class folders (../shared/data/cifar10/cifar10-jpg.tar.gz
#   unpacked); TIME is a `train --time` duration (default 30m).
# Writes OUT/<candidate>/ (the run folder, its evaluation in RUN/eval/), OUT/<candidate>.log and .eval.txt.
set -euo pipefail
cifar=${1:?CIFAR_DIR}; out=${2:?OUT}; time=${3:-30m}
bin=${GANFORGE:-target/release/ganforge}
mkdir -p "$out"

# name | overrides on top of the cifar10 preset
candidates=(
  "dcgan|"
  "dcgan-tricks-ema|--set tricks.soft_labels=true --set tricks.label_flip_p=0.05 --set train.g_ema=0.999 --set train.g_ema_start=500"
  "sngan-ttur-ema|--set train.loss=hinge --set dcgan.spectral_norm_d=true --set dcgan.batch_norm_d=false --set train.lr_d=4e-4 --set train.lr_g=1e-4 --set train.beta1=0.0 --set train.beta2=0.9 --set train.g_ema=0.999 --set train.g_ema_start=500"
  "biggan|--set model.arch=biggan --set model.classes=10 --set biggan.attn_res=16 --set train.loss=hinge --set train.lr_g=1e-4 --set train.lr_d=4e-4 --set train.beta1=0.0 --set train.n_critic=2 --set train.g_ema=0.999 --set train.g_ema_start=500"
)
if [ -n "${ONLY:-}" ]; then candidates=("${candidates[@]:$ONLY:1}"); fi

for c in "${candidates[@]}"; do
  name=${c%%|*}; sets=${c#*|}
  # shellcheck disable=SC2086
  RAYON_NUM_THREADS=${THREADS:-1} "$bin" train --preset cifar10 --data "cifar10:$cifar/train" $sets \
    --steps 10000000 --time "$time" --out "$out/$name" > "$out/$name.log" 2>&1 &
done
wait

for c in "${candidates[@]}"; do
  name=${c%%|*}
  run=$(ls -d "$out/$name"/0* | tail -1)
  # eval prints its table and writes RUN/eval/; the training log's last line names the step.
  "$bin" eval --run "$run" --features cifar --metrics fid,kid,coverage --n 10000 --real "cifar10:$cifar/test" \
    > "$out/$name.eval.txt" 2>&1
  echo "== $name ($run)"; tail -n 3 "$out/$name.log"; cat "$out/$name.eval.txt"
done
