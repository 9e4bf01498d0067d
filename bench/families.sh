#!/usr/bin/env bash
# Issue 16: StyleGAN2-style vs DCGAN vs BigGAN-style at equal wall time, each with its preset.
#
# Runs the three families side by side, one thread each, for the same wall time, then judges
# every run with the shipped classifier of the data (LeNet for MNIST, the CIFAR-10 CNN for
# CIFAR-10): a domain FID and KID on 10,000 images against the 10,000 test images, and class
# coverage. Side by side, each run gets the same share of the machine at the same moments, so
# the comparison is fair even while the machine does other work; the absolute quality is that
# of a shorter run on the whole machine. (BigGAN's preset is class-conditional: it is told the
# class of each image, which the others must learn to cover.)
#
# Usage: bench/families.sh mnist OUT [TIME]
#        bench/families.sh cifar10 OUT [TIME] CIFAR_DIR
#   TIME is a `train --time` duration (default 30m); CIFAR_DIR holds train/ and test/ class
#   folders (../shared/data/cifar10/cifar10-jpg.tar.gz unpacked).
# Writes OUT/<family>/ (the run folder, its evaluation in RUN/eval/), OUT/<family>.log and .eval.txt.
set -euo pipefail
data=${1:?mnist or cifar10}; out=${2:?OUT}; time=${3:-30m}
bin=${GANFORGE:-target/release/ganforge}
mkdir -p "$out"

case "$data" in
  mnist)
    # family | preset and overrides
    families=("dcgan|--preset mnist" "biggan|--preset biggan" "stylegan2|--preset stylegan2")
    judge=(--features lenet --metrics fid,kid,coverage --n 10000)
    ;;
  cifar10)
    cifar=${4:?CIFAR_DIR}
    d="--data cifar10:$cifar/train"
    families=("dcgan|--preset cifar10 $d"
      "biggan|--preset cifar10 $d --set model.arch=biggan --set model.classes=10 --set biggan.attn_res=16 --set train.loss=hinge --set tricks.soft_labels=false --set tricks.label_flip_p=0 --set train.lr_g=1e-4 --set train.lr_d=4e-4 --set train.beta1=0.0 --set train.n_critic=2"
      "stylegan2|--preset stylegan2-cifar $d")
    judge=(--features cifar --metrics fid,kid,coverage --n 10000 --real "cifar10:$cifar/test")
    ;;
  *) echo "unknown data '$data': mnist or cifar10" >&2; exit 2 ;;
esac

for f in "${families[@]}"; do
  name=${f%%|*}; args=${f#*|}
  # shellcheck disable=SC2086
  RAYON_NUM_THREADS=${THREADS:-1} "$bin" train $args --steps 10000000 --time "$time" --out "$out/$name" > "$out/$name.log" 2>&1 &
done
wait

for f in "${families[@]}"; do
  name=${f%%|*}
  run=$(ls -d "$out/$name"/0* | tail -1)
  "$bin" eval --run "$run" "${judge[@]}" > "$out/$name.eval.txt" 2>&1
  echo "== $name ($run)"; tail -n 3 "$out/$name.log"; cat "$out/$name.eval.txt"
done
