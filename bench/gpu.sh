#!/usr/bin/env bash
# GPU benchmark: ganforge on Vulkan vs PyTorch on CUDA, side by side on one NVIDIA machine.
#
# Two halves, because GPU machines often have no Rust toolchain and no network:
#
#   bench/gpu.sh --prepare      # on a build machine (x86-64 Linux, Rust, Debian's apt):
#                               # builds the train_step bench in release with --features vulkan
#                               # (about 22 min on 2 cores), strips it into .gpu/train_step, and
#                               # downloads the Vulkan loader's Debian packages into .gl/
#   bench/gpu.sh [OUT_DIR]      # on the GPU machine, from the repository root with .gpu/ and .gl/
#                               # beside it: unpacks the loader when the machine lacks one, then
#                               # runs compare.py (training steps at batch 64, 128 and 256; sampling
#                               # images/s at batch 1 and 256) and writes each table and its JSON
#                               # to OUT_DIR (default bench/results/gpu-DATE; $OUT when set, as the
#                               # device tool of this workplace returns that folder).
#
# The GPU machine needs python3 with PyTorch (CUDA) and an NVIDIA driver with its Vulkan ICD.
# Each compare.py call has a time limit, so the whole script ends within 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    exe=$(cargo bench --profile release -p ganforge --features vulkan --bench train_step --no-run --message-format=json \
        | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train_step" and m.get("executable")][0])')
    mkdir -p .gpu .gl
    strip -o .gpu/train_step "$exe"
    ls -l .gpu/train_step
    (cd .gl && apt-get download libvulkan1)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >> .git/info/exclude
    echo "prepared: carry .gpu and .gl to the GPU machine and run bench/gpu.sh there"
    exit 0
fi

out="${1:-${OUT:-bench/results/gpu-$(date +%F)}}"
mkdir -p "$out"
[ -x .gpu/train_step ] || { echo "error: no .gpu/train_step: run bench/gpu.sh --prepare on a build machine first" >&2; exit 1; }
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
    ls .gl/*.deb >/dev/null 2>&1 || { echo "error: no Vulkan loader here and none in .gl/ (bench/gpu.sh --prepare)" >&2; exit 1; }
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
# Where the NVIDIA container runtime mounts the driver, the ICD file is not in the default path.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$icd" ] && export VK_DRIVER_FILES="$icd"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt" || true
python3 -c 'import torch; assert torch.cuda.is_available(), "PyTorch sees no CUDA device"; print("torch", torch.__version__)' | tee -a "$out/gpu.txt"

status=0
for b in 64 128 256; do
    echo "== training step, batch $b"
    timeout 150 python3 bench/compare.py --bin .gpu/train_step --device vulkan --configs small32,dcgan64 --batches "$b" --steps 10 --warmup 3 \
        > "$out/train-batch$b.txt" 2> "$out/train-batch$b.err" || { echo "batch $b failed or timed out (see $out/train-batch$b.err)"; status=1; }
    cat "$out/train-batch$b.txt"
done
echo "== sampling"
timeout 100 python3 bench/compare.py --bin .gpu/train_step --device vulkan --sample --configs dcgan64 --batches 1,256 --steps 20 --warmup 5 \
    > "$out/sample.txt" 2> "$out/sample.err" || { echo "sampling failed or timed out (see $out/sample.err)"; status=1; }
cat "$out/sample.txt"
exit $status
