#!/usr/bin/env bash
# gpu-x2-bench.sh: the 2-GPU benchmark of multi-GPU training (docs/benchmarks.md, docs/training.md) on a machine with
# two GPUs of one host (nvidia-h200-x2), ours (wf, ZeRO-2 over NCCL) beside the PyTorch twin (torchrun, FSDP2).
#
#   here, once:   scripts/gpu-bundle.sh src/Workflows.Cli/Workflows.Cli.csproj      # writes .gpu-bundle/ (ignored)
#   there:        bash scripts/gpu-x2-bench.sh [STEP...]                             # carry .gpu-bundle
#
# Steps, in this order when none is named (all of them take about 11 minutes, more than one 10-minute device call:
# run them as two calls, `check collectives 1b` (about 5 min) and `7b-64k 7b-80k` (about 6 min)):
#   check        GPUs, torch, the NVLink-multicast variables, wf doctor
#   collectives  NCCL through wf on one GPU, then on two (every element checked, algbw/busbw)
#   1b           TinyLlama-1.1B's shape at 32K and 64K, 2 GPUs and 1 GPU, both sides: scaling (goal >= 1.9x) and
#                ours / twin on 2 GPUs (goal >= 1.0x)
#   7b-64k       LLaMA-2 7B's shape at 64K on 2 GPUs, optimizer state on the GPUs (no offload); no 1-GPU run (7B
#   7b-80k       does not fit one GPU without offload); the same at 80K. Goal: both fit and run.
# Each step writes x2-STEP.json (the command's --json report; check writes x2-check.txt) and x2-STEP.err.log (progress, both sides' ranks) to
# $OUT when set (the device tool's output folder), else out/gpu-x2/; x2-timeline.txt gives each step's time and exit
# code; x2-nvidia-smi.txt samples both GPUs every 5 s. A step that runs past STEP_LIMIT seconds (default 290) is
# stopped and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu-x2}
mkdir -p "$out"
wf=(bash .gpu-bundle/run.sh)
[[ -f .gpu-bundle/run.sh ]] || { echo "gpu-x2-bench.sh: .gpu-bundle/run.sh missing: run scripts/gpu-bundle.sh here and carry .gpu-bundle" >&2; exit 2; }
limit=${STEP_LIMIT:-290}

# NVLink multicast stays off on hosts shared with others (wf and the twin's torchrun also set these when unset).
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} TORCH_SYMM_MEM_DISABLE_MULTICAST=${TORCH_SYMM_MEM_DISABLE_MULTICAST:-1} \
  NVSHMEM_DISABLE_NVLS=${NVSHMEM_DISABLE_NVLS:-1}

step() {  # step NAME COMMAND...: runs it with a time limit, JSON on stdout to x2-NAME.json
  local name=$1; shift
  echo "== $name ($(date +%T), limit ${limit} s): $*" | tee -a "$out/x2-timeline.txt"
  timeout --kill-after=15 "$limit" "$@" >"$out/x2-$name.json" 2>"$out/x2-$name.err.log"
  echo "   rc=$? $(date +%T)" | tee -a "$out/x2-timeline.txt"
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
      echo "== check ($(date +%T))" | tee -a "$out/x2-timeline.txt"
      run_check >"$out/x2-check.txt" 2>&1
      echo "   rc=$? $(date +%T)" | tee -a "$out/x2-timeline.txt" ;;
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
    *) echo "gpu-x2-bench.sh: unknown step $1 (check collectives 1b 7b-64k 7b-80k)" >&2; return 2 ;;
  esac
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(check collectives 1b 7b-64k 7b-80k)
nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -l 5 >>"$out/x2-nvidia-smi.txt" 2>&1 &
sampler=$!
trap 'kill "$sampler" 2>/dev/null' EXIT
for s in "${steps[@]}"; do run_step "$s"; done
