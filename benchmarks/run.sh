#!/usr/bin/env bash
# Measures everything BENCHMARKS.md shows and regenerates it: `benchmarks/run.sh` from the
# repository root. Needs a release build with wgpu (`cargo build --release --workspace --features
# wgpu`), the Fashion-MNIST files (`.ci/run` installs them), and for PyTorch's rows a Python with
# torch 2.15 in ADAMLAB_TORCH_PYTHON (else python3; without torch the rows are left out, with a
# line saying so). Takes about 35 minutes on a 2-core machine (its three CPU step commands and the
# CPU train command took 23 on 2026-11-27); run it on a quiet one. Each file records the machine's
# load over adamlab's side and PyTorch's; a busy side is said on stderr and flagged by the report.
set -euo pipefail
cd "$(dirname "$0")/.."
A="${CARGO_TARGET_DIR:-target}/release/adamlab"
out=benchmarks

# One optimizer step: fused (adamlab's default), the tensor-op reference step, burn's built-in and
# PyTorch's fused/foreach/for-loop, at 1e6 and 1e7 parameters, on the CPU backends.
# Three rounds in turn, each row the median of its rounds' medians: this VM's memory bandwidth
# drifts by a third within minutes (BENCHMARKS.md, "How far to trust a ratio").
"$A" bench step --backends ndarray,flex --params 1e6,1e7 --torch --rounds 3 \
    --optimizers 'adam,adam(fused=false),burn-adam,adamw,adamw(fused=false),burn-adamw,adam(amsgrad=true),adam(amsgrad=true, fused=false),sgd(momentum=0.9),sgd(momentum=0.9, fused=false),burn-sgd(momentum=0.9),lion,lion(fused=false),burn-lion,adagrad,adagrad(fused=false),burn-adagrad,rmsprop,rmsprop(fused=false),burn-rmsprop,adamax,adamax(fused=false)' \
    --json "$out/step.json"
# 1e8 parameters, the optimizers with PyTorch fused counterparts (each holds about 1.6–2 GB
# there; the reference steps, as slow as burn's, are left out).
"$A" bench step --backends ndarray,flex --params 1e8 --torch --warmup 1 --repeats 5 --rounds 3 \
    --optimizers 'adam,burn-adam,adamw,burn-adamw,adam(amsgrad=true),sgd(momentum=0.9),burn-sgd(momentum=0.9)' \
    --json "$out/step-1e8.json"
# The same 1e7 parameters split into 100 tensors: the per-tensor overhead.
"$A" bench step --backends ndarray,flex --params 1e7 --tensors 100 --torch --rounds 3 \
    --optimizers 'adam,adam(fused=false),burn-adam' --json "$out/step-100-tensors.json"
# Low-bit states against PyTorch's fused f32 AdamW: 8-bit moments and bfloat16 moments; and the
# 8-bit steps against bitsandbytes' own (0.50.2, its CPU path) where that Python imports it.
"$A" bench step --backends flex --params 1e7,1e8 --torch --warmup 1 --repeats 5 --rounds 2 \
    --optimizers 'adamw,adamw8bit,adamw(state_dtype=bf16),lion,lion8bit' --json "$out/step-low-bit.json"
# wgpu (llvmpipe here: the "GPU" is the same two cores).
"$A" bench step --backends wgpu --params 1e5,1e6 --warmup 1 --repeats 5 \
    --optimizers 'adam,adam(fused=false),burn-adam' --json "$out/step-wgpu.json"

# Training throughput, split into forward, backward and step; fused against the reference step.
"$A" bench train --backends ndarray,flex --model cnn,mlp --optimizers 'adam,adam(fused=false),burn-adam' \
    --batch-size 64 --repeats 30 --torch --json "$out/train.json"
"$A" bench train --backends wgpu --model cnn --optimizers adam --batch-size 32 --warmup 1 --repeats 5 \
    --json "$out/train-wgpu.json"
# The workloads' training steps beside PyTorch's on the same models (tools/reference/models.py): the
# time per step the shoot-out sections compare with.
"$A" bench train --backends flex --model char-gpt,softmax-regression,rosenbrock,quadratic \
    --optimizers 'adamw,sgd(momentum=0.9),adafactor' --batch-size 32,64 --warmup 2 --repeats 10 --torch \
    --json "$out/train-workloads.json"

# The shoot-out, per workload: each optimizer's learning rate tuned on a log grid against the
# validation split, then runs at the tuned rate over seeds. The test functions and softmax
# regression with every registered optimizer (minutes); char-gpt and the CNN with the optimizers
# their section discusses, centred where each is known to work (hours on 2 cores).
for model in rosenbrock quadratic; do
    "$A" bench optimizers --model "$model" --backends flex --json "$out/shootout-$model.json"
done
"$A" bench optimizers --model softmax-regression --backends flex --seeds 0,1 --lr-grid 0.1,0.3,1,3,10,30,100 \
    --json "$out/shootout-softmax-regression.json"
# adamw against adamw8bit on the article's CNN at the same rate, five seeds: the same accuracy
# within seed-to-seed spread with a quarter of the state?
"$A" bench optimizers --model cnn --optimizers 'adamw,adamw8bit' --lr-grid 1 --seeds 0,1,2,3,4 --steps 844 \
    --eval-every 211 --backends flex --json "$out/shootout-cnn-8bit.json"
"$A" bench optimizers --model char-gpt --optimizers 'adamw,sgd(momentum=0.9),lion,adafactor,muon' \
    --lr sgd=0.1 --lr lion=3e-4 --lr muon=0.01 --backends flex --lr-grid 0.3,1,3 --tune-steps 80 \
    --steps 300 --eval-every 50 --seeds 0,1 --limit-eval 256 --json "$out/shootout-char-gpt.json"

# The GPU files (`*-h100*.json`) come from benchmarks/run-gpu.sh on a GPU machine.
# --overwrite: BENCHMARKS.md and figures/ are this script's own (reports before the manifest
# `figures/.adamlab-report` existed did not list them).
"$A" bench report "$out"/step.json "$out"/step-1e8.json "$out"/step-100-tensors.json "$out"/step-low-bit.json "$out"/step-wgpu.json \
    "$out"/step-h100.json "$out"/step-h100-100-tensors.json "$out"/step-h100-multi-tensor.json \
    "$out"/train.json "$out"/train-wgpu.json "$out"/train-h100.json "$out"/train-workloads.json \
    "$out"/shootout-char-gpt.json "$out"/shootout-softmax-regression.json "$out"/shootout-rosenbrock.json \
    "$out"/shootout-quadratic.json "$out"/shootout-cnn-8bit.json \
    --out "$out/figures" --markdown BENCHMARKS.md --preface "$out/preface.md" --overwrite
