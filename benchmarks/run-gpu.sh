#!/usr/bin/env bash
# The GPU files of BENCHMARKS.md (`*-h100*.json`): wgpu on a hardware GPU beside PyTorch on CUDA,
# `benchmarks/run-gpu.sh` from the repository root of a machine with an NVIDIA GPU, its Vulkan
# driver and a CUDA build of torch (ADAMLAB_TORCH_PYTHON, else python3). Needs a release build
# with wgpu (`cargo build --release --workspace --features wgpu`; ADAMLAB_BIN names another
# binary), which has burn's autotune: each shape is tuned on its first use, inside the warm-up
# steps. ADAMLAB_FUSION_BIN, when set, names a build with burn's kernel fusion too
# (`--features wgpu,fusion`), measured beside it. About five minutes on an H100.
# Then rebuild the page with the `bench report` line at the end of benchmarks/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
A="${ADAMLAB_BIN:-${CARGO_TARGET_DIR:-target}/release/adamlab}"
out="${ADAMLAB_BENCH_OUT:-benchmarks}"

# One step of every fused optimizer against its reference step, burn's built-in and PyTorch on
# CUDA (fused, foreach, for-loop; torch has no fused Adagrad on CUDA), up to 1e8 parameters.
"$A" bench step --backends wgpu --params 1e6,1e7,1e8 --torch \
    --optimizers 'adam,adam(fused=false),burn-adam,adamw,adamw(fused=false),burn-adamw,adam(amsgrad=true),adam(amsgrad=true, fused=false),sgd(momentum=0.9),sgd(momentum=0.9, fused=false),burn-sgd(momentum=0.9),lion,lion(fused=false),burn-lion,adagrad,adagrad(fused=false),burn-adagrad' \
    --json "$out/step-h100.json"
# 1e7 parameters in 100 tensors: one kernel launch per tensor (as a training step through burn's
# ModuleOptimizer), then one launch for up to 32 tensors (--multi-tensor), as torch's are.
"$A" bench step --backends wgpu --params 1e7 --tensors 100 --torch \
    --optimizers 'adam,adam(fused=false),burn-adam' --json "$out/step-h100-100-tensors.json"
"$A" bench step --backends wgpu --params 1e7 --tensors 100 --multi-tensor --torch \
    --optimizers 'adam,adamw,sgd(momentum=0.9),lion,adagrad' --json "$out/step-h100-multi-tensor.json"
# The CNN's training step on the GPU, forward/backward/step.
"$A" bench train --backends wgpu --model cnn --optimizers 'adam,adam(fused=false),burn-adam' \
    --batch-size 64,256 --torch --json "$out/train-h100.json"
# The same with burn's fusion, where every step takes the reference path.
if [[ -n "${ADAMLAB_FUSION_BIN:-}" ]]; then
    "$ADAMLAB_FUSION_BIN" bench train --backends wgpu --model cnn --optimizers 'adam' \
        --batch-size 64,256 --json "$out/train-h100-fusion.json"
fi
