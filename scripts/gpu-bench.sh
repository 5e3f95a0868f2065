#!/usr/bin/env bash
# gpu-bench.sh: the GPU measurements still missing from docs/benchmarks.md and docs/training.md, as named steps, so a
# device call of at most 10 minutes runs a few of them and brings every output back.
#
#   here, once:   scripts/gpu-bundle.sh src/Workflows.Cli/Workflows.Cli.csproj      # writes .gpu-bundle/ (ignored)
#   there:        bash scripts/gpu-bench.sh STEP...                                  # carry .gpu-bundle
#
# One H200 (the 7B memory goals of the single-GPU trainer, NCCL with one rank, the HuggingFace tokenizer check):
#   check        GPUs, torch, the NVLink-multicast variables, wf doctor
#   collectives-1  NCCL through wf with one rank (the native calls, every element checked)
#   hf           our needle prompt ids (wf eval needle --prompt-ids) against transformers' LLaMA tokenizer
#                (bench/hf_needle_ids.py); needs $GPU_DATA/tokenizer.model and $GPU_DATA/PaulGrahamEssays/, which
#                may not be committed (licences): put them in the carried folder (GPU_DATA, default .gpu-bundle/data);
#                the Python side needs more than 150 s on the H200: run it alone with STEP_LIMIT=420
#   7b-32k-1 7b-64k-1 7b-80k-1   LLaMA-2 7B's shape, optimizer in host memory, beside the twin, each context in a
#                process of its own under cudaMallocAsync (allocator peaks for ours); goal: memory <= 1.1x the twin's and
#                below it at 64K/80K, speed >= 1.0x (about 3-5 min each)
#   7b-128k-1    the same at 131,072 without the twin (it cannot hold its optimizer state there); goal >= 2,400
#                tokens/s; give it a call of its own with STEP_LIMIT=560
# Two GPUs of one host (nvidia-h200-x2): ours (wf, ZeRO-2 over NCCL) beside the PyTorch twin (torchrun, FSDP2);
# `check collectives 1b` (about 5 min), then `7b-64k 7b-80k` (about 6 min):
#   collectives  NCCL through wf on one GPU, then on two (every element checked, algbw/busbw)
#   1b           TinyLlama-1.1B's shape at 32K and 64K, 2 GPUs and 1 GPU, both sides: scaling (goal >= 1.9x) and
#                ours / twin on 2 GPUs (goal >= 1.0x)
#   7b-64k       LLaMA-2 7B's shape at 64K on 2 GPUs, optimizer state on the GPUs (no offload); no 1-GPU run (7B
#   7b-80k       does not fit one GPU without offload); the same at 80K. Goal: both fit and run.
#   7b-80k-z3    ours only, ZeRO stage 3 (parameters sharded, gathered block by block) at 80K on 2 GPUs, optimizer on
#                the GPUs: stage 3 on GPUs for the first time (NCCL broadcasts of the gathers); compare its memory and
#                speed with 7b-80k's ours (about 4 min)
# Each step writes gpu-STEP.json (the command's --json report; check writes gpu-check.txt) and gpu-STEP.err.log
# (progress, both sides' ranks) to $OUT when set (the device tool's output folder), else out/gpu-bench/;
# gpu-timeline.txt gives each step's time and exit code; gpu-nvidia-smi.txt samples the GPUs every 5 s. A step that
# runs past STEP_LIMIT seconds (default 290) is stopped and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu-bench}
data=${GPU_DATA:-.gpu-bundle/data}
mkdir -p "$out"
wf=(bash .gpu-bundle/run.sh)
[[ -f .gpu-bundle/run.sh ]] || { echo "gpu-bench.sh: .gpu-bundle/run.sh missing: run scripts/gpu-bundle.sh here and carry .gpu-bundle" >&2; exit 2; }
limit=${STEP_LIMIT:-290}

# NVLink multicast stays off on hosts shared with others (wf and the twin's torchrun also set these when unset).
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} TORCH_SYMM_MEM_DISABLE_MULTICAST=${TORCH_SYMM_MEM_DISABLE_MULTICAST:-1} \
  NVSHMEM_DISABLE_NVLS=${NVSHMEM_DISABLE_NVLS:-1}

step() {  # step NAME COMMAND...: runs it with a time limit, JSON on stdout to gpu-NAME.json
  local name=$1; shift
  echo "== $name ($(date +%T), limit ${limit} s): $*" | tee -a "$out/gpu-timeline.txt"
  timeout --kill-after=15 "$limit" "$@" >"$out/gpu-$name.json" 2>"$out/gpu-$name.err.log"
  echo "   rc=$? $(date +%T)" | tee -a "$out/gpu-timeline.txt"
}

run_check() {
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
  nvidia-smi topo -m || true
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  env | grep -E '^(NCCL_NVLS_ENABLE|TORCH_SYMM_MEM_DISABLE_MULTICAST|NVSHMEM_DISABLE_NVLS)=' || true
  "${wf[@]}" doctor
}

run_step() {
  case $1 in
    check)
      echo "== check ($(date +%T))" | tee -a "$out/gpu-timeline.txt"
      run_check >"$out/gpu-check.txt" 2>&1
      echo "   rc=$? $(date +%T)" | tee -a "$out/gpu-timeline.txt" ;;
    collectives)
      step collectives-1 "${wf[@]}" bench collectives --device cuda --sizes 1,64,512 --json
      step collectives-2 "${wf[@]}" bench collectives --device cuda --gpus 2 --sizes 1,64,512 --json ;;
    1b) step 1b "${wf[@]}" bench train --preset 1b --context 32768,65536 --device cuda --gpus 2 --json ;;
    # cudaMallocAsync for 7B, both sides: the caching allocator's segments cost ours 1.3x at 80K on one GPU
    # (docs/training.md), and this backend gives ours allocator peaks too.
    7b-64k) PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync step 7b-64k "${wf[@]}" bench train --preset 7b --context 65536 \
      --device cuda --gpus 2 --no-single --micro-batches 2 --optimizer-steps 1 --json ;;
    7b-80k) PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync step 7b-80k "${wf[@]}" bench train --preset 7b --context 81920 \
      --device cuda --gpus 2 --no-single --micro-batches 2 --optimizer-steps 1 --json ;;
    7b-80k-z3) PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync step 7b-80k-z3 "${wf[@]}" bench train --preset 7b --context 81920 \
      --device cuda --gpus 2 --no-single --no-twin --zero-stage 3 --micro-batches 2 --optimizer-steps 1 --json ;;
    collectives-1) step collectives-1 "${wf[@]}" bench collectives --device cuda --sizes 1,64,512 --json ;;
    hf)
      mkdir -p "$out/hf"
      step hf-ours "${wf[@]}" eval needle experiments/per-source-5b-80k.yaml --prompt-ids "$out/hf/ours.json" --out "$out/hf" \
        --tokenizer "$data/tokenizer.model" --haystack "$data/PaulGrahamEssays"
      step hf python3 bench/hf_needle_ids.py --tokenizer "$data/tokenizer.model" --ours "$out/hf/ours.json" --haystack "$data/PaulGrahamEssays"
      rm -f "$out/hf/ours.json" ;;  # large, and rebuilt in seconds
    7b-32k-1 | 7b-64k-1 | 7b-80k-1)
      local context=$(( ${1:3:2} * 1024 ))
      PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync step "$1" "${wf[@]}" bench train --preset 7b --context "$context" \
        --device cuda --offload cpu --micro-batches 2 --optimizer-steps 1 --json ;;
    7b-128k-1) PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync step 7b-128k-1 "${wf[@]}" bench train --preset 7b --context 131072 \
      --device cuda --offload cpu --no-twin --micro-batches 1 --optimizer-steps 1 --json ;;
    *) echo "gpu-bench.sh: unknown step $1 (check collectives-1 hf 7b-32k-1 7b-64k-1 7b-80k-1 7b-128k-1 | collectives 1b 7b-64k 7b-80k 7b-80k-z3)" >&2; return 2 ;;
  esac
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || { echo "usage: gpu-bench.sh STEP... (see the header)" >&2; exit 2; }
nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -l 5 >>"$out/gpu-nvidia-smi.txt" 2>&1 &
sampler=$!
trap 'kill "$sampler" 2>/dev/null' EXIT
for s in "${steps[@]}"; do run_step "$s"; done
