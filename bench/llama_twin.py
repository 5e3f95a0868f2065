#!/usr/bin/env python3
"""Python twin of Workflows.Training's LLaMA model, for `wf bench train` and `wf bench prefill`.

The same architecture and the same numerics, op for op, in plain PyTorch (no dependency beyond torch):
- RMSNorm in float32: weight * (x32 * rsqrt(mean(x32^2) + eps)); SwiGLU MLP; grouped-query attention with RoPE
  (HF conventions: cat(freqs, freqs), rotate_half), tables computed in float64 then cast to the compute type;
  causal attention through scaled_dot_product_attention(is_causal=True) (flash kernels on GPU).
- Precision, --scheme:
  "lean" (the default, what ours does): bf16 parameters, so projections, attention and the residual stream run in
  bf16 (norms in float32 inside, the loss's softmax in float32); each parameter's gradient is added into a float32
  buffer by a post-accumulate hook and freed; AdamW runs on float32 master weights, on the GPU (fused) or, with
  --offload cpu, on pinned host copies with PyTorch's fused CPU AdamW (gradients copied down, parameters copied up).
  "explicit": float32 parameters; every projection casts its input and weight to bf16 (like autocast, which
  TorchSharp lacks), norms, residual stream and loss stay float32; fused AdamW on the parameters (what ours did
  before it had bf16 parameters; the issue's reference figures).
  "autocast": the fp32 model under torch.autocast(bf16), the idiomatic PyTorch way, as an extra reference.
- Activation checkpointing per block: torch.utils.checkpoint with use_reentrant=True (ours is the reentrant
  variant); --no-reentrant for the non-reentrant one.
- Loss: cross-entropy in float32; with --loss-chunk N > 0 and more positions than N, the same chunked
  cross-entropy as ours (gradients computed chunk by chunk in the forward pass, logits never all materialised).
- Optimizer: AdamW(betas=(0.9, 0.95), eps=1e-8, weight_decay=0) with fused=True, foreach=True or the plain
  per-parameter loop; clip_grad_norm_(1.0) every step, loss.item() every micro-batch step, as our Trainer does.
- Timing (train): per context, --warmup full steps, then --micro-batches timed forward+backward passes (gradients
  accumulating, as within a 4M-token step) and --optimizer-steps timed optimizer steps; the implied throughput of
  a whole step of --batch-tokens is reported beside the micro-batch throughput, with the allocator's peaks.
- Inference (prefill mode): the same KV cache (preallocated [B, kv_heads, capacity, head_dim]), the same chunked
  prefill (first chunk is_causal, later chunks a boolean mask [n, start+n], GQA heads folded into the query axis),
  greedy decoding and prefix reuse by truncation.

- On N GPUs (train under torchrun --nproc_per_node N, which sets WORLD_SIZE): FSDP2 data parallel, see
  train_distributed (why FSDP2 and not DDP + ZeroRedundancyOptimizer: it is the ZeRO stage 2 that ours does).

Modes: train, prefill, peak. Each prints one JSON object on the last line of stdout (under torchrun: rank 0).
"""
import argparse
import json
import math
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="llama_twin.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)

    def shape(sp):
        sp.add_argument("--vocab", type=int, default=32000)
        sp.add_argument("--hidden", type=int, default=1024)
        sp.add_argument("--intermediate", type=int, default=2816)
        sp.add_argument("--layers", type=int, default=12)
        sp.add_argument("--heads", type=int, default=16)
        sp.add_argument("--kv-heads", type=int, default=16)
        sp.add_argument("--rope-theta", type=float, default=10000.0)
        sp.add_argument("--rms-eps", type=float, default=1e-5)
        sp.add_argument("--tied", action="store_true")
        sp.add_argument("--device", default="cuda")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")

    t = sub.add_parser("train", help="time training micro-batches and optimizer steps")
    shape(t)
    t.add_argument("--contexts", "--context", dest="contexts", required=True, help="comma-separated contexts, measured in increasing order")
    t.add_argument("--micro-batch", type=int, default=1)
    t.add_argument("--warmup", type=int, default=1)
    t.add_argument("--micro-batches", type=int, default=3)
    t.add_argument("--optimizer-steps", type=int, default=2)
    t.add_argument("--batch-tokens", type=int, default=4_000_000)
    t.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    t.add_argument("--scheme", choices=["lean", "explicit", "autocast"], default="lean")
    t.add_argument("--offload", choices=["gpu", "cpu"], default="gpu", help="lean: where the fp32 master weights and AdamW state live")
    t.add_argument("--checkpointing", dest="checkpointing", action="store_true", default=True)
    t.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    t.add_argument("--no-reentrant", dest="reentrant", action="store_false", default=True)
    t.add_argument("--optimizer", choices=["fused", "foreach", "plain"], default="fused")
    t.add_argument("--loss-chunk", type=int, default=8192)
    t.add_argument("--lr", type=float, default=1e-5)
    t.add_argument("--max-grad-norm", type=float, default=1.0)

    f = sub.add_parser("prefill", help="time prefill and a synthetic needle grid")
    shape(f)
    f.add_argument("--lengths", default="", help="comma-separated prompt lengths to time")
    f.add_argument("--chunk", type=int, default=4096)
    f.add_argument("--weights", choices=["bf16", "fp32"], default="bf16")
    f.add_argument("--repeats", type=int, default=2)
    f.add_argument("--grid-lengths", default="", help="comma-separated lengths of the synthetic grid")
    f.add_argument("--grid-depths", type=int, default=0)
    f.add_argument("--needle-tokens", type=int, default=24)
    f.add_argument("--question-tokens", type=int, default=16)
    f.add_argument("--new-tokens", type=int, default=50)
    f.add_argument("--profile", action="store_true", help="print the top CUDA kernels of each grid pass (torch.profiler) to stderr")
    f.add_argument("--reuse-align", type=int, default=1, help="with reuse, keep the prefix up to the insertion point rounded down to a multiple of this")

    k = sub.add_parser("peak", help="measure the matmul peak")
    k.add_argument("--device", default="cuda")
    k.add_argument("--size", type=int, default=8192)
    k.add_argument("--iters", type=int, default=50)
    k.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    k.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None):
    args = parse_args(argv)
    import os
    import torch  # imported after parsing, so --help works without torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    distributed = args.mode == "train" and int(os.environ.get("WORLD_SIZE", "1")) > 1
    result = {"mode": args.mode, "torch": torch.__version__, "device": args.device}
    if args.device.startswith("cuda"):
        result["device_name"] = torch.cuda.get_device_name(torch.device(args.device))
    if args.mode == "peak":
        result.update(peak(torch, args))
    elif distributed:
        result.update(train_distributed(torch, args))
        if result["rank"] != 0:
            return 0  # rank 0 prints the group's result
    elif args.mode == "train":
        result.update(train(torch, args))
    else:
        result.update(prefill(torch, args))
    if args.device.startswith("cuda") and not distributed:
        free, total = torch.cuda.mem_get_info(torch.device(args.device))
        result.update(max_memory_allocated=torch.cuda.max_memory_allocated(), max_memory_reserved=torch.cuda.max_memory_reserved(),
                      device_used_bytes=total - free, device_total_bytes=total)
    print(json.dumps(result), flush=True)


def sync(torch, device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def peak(torch, args):
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    n = args.size
    a = torch.randn(n, n, dtype=dtype, device=args.device)
    b = torch.randn(n, n, dtype=dtype, device=args.device)
    for _ in range(3):
        a @ b
    sync(torch, args.device)
    start = time.perf_counter()
    for _ in range(args.iters):
        a @ b
    sync(torch, args.device)
    seconds = time.perf_counter() - start
    return {"matmul_size": n, "matmul_dtype": args.dtype, "peak_flops": 2.0 * n ** 3 * args.iters / seconds}


# ---------------------------------------------------------------- the model (mirrors src/Workflows.Training/Model)

def build(torch, args, compute):
    import torch.nn as nn
    import torch.nn.functional as F

    def linear(x, w):
        if x.dtype == compute and w.dtype == compute:
            return F.linear(x, w)
        return F.linear(x.to(compute), w.to(compute))

    head_dim = args.hidden // args.heads
    groups = args.heads // args.kv_heads

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(args.hidden))

        def forward(self, x):  # HF's LlamaRMSNorm: normalise in float32, back to the input's type, then scale
            x32 = x.to(torch.float32)
            return self.weight * (x32 * (x32.pow(2).mean(-1, keepdim=True) + args.rms_eps).rsqrt()).to(x.dtype)

    def rope(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(args.hidden, args.heads * head_dim, bias=False)
            self.k_proj = nn.Linear(args.hidden, args.kv_heads * head_dim, bias=False)
            self.v_proj = nn.Linear(args.hidden, args.kv_heads * head_dim, bias=False)
            self.o_proj = nn.Linear(args.heads * head_dim, args.hidden, bias=False)

        def forward(self, x, cos, sin, cache=None, start=0, mask=None):
            b, n = x.shape[0], x.shape[1]

            def heads(proj, count):
                return linear(x, proj.weight).view(b, n, count, head_dim).transpose(1, 2)

            q = rope(heads(self.q_proj, args.heads), cos, sin)
            k = rope(heads(self.k_proj, args.kv_heads), cos, sin)
            v = heads(self.v_proj, args.kv_heads)
            if cache is not None:
                cache.write(k, v, start)
            if start == 0:
                if groups > 1:
                    k = k.repeat_interleave(groups, dim=1)
                    v = v.repeat_interleave(groups, dim=1)
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                keys, values = cache.keys(start + n), cache.values(start + n)
                folded = q if groups == 1 else q.reshape(b, args.kv_heads, groups * n, head_dim)
                out = F.scaled_dot_product_attention(folded, keys, values, attn_mask=None if n == 1 else mask)
                if groups > 1:
                    out = out.view(b, args.heads, n, head_dim)
            return linear(out.transpose(1, 2).reshape(b, n, args.heads * head_dim), self.o_proj.weight)

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(args.hidden, args.intermediate, bias=False)
            self.up_proj = nn.Linear(args.hidden, args.intermediate, bias=False)
            self.down_proj = nn.Linear(args.intermediate, args.hidden, bias=False)

        def forward(self, x):
            return linear(F.silu(linear(x, self.gate_proj.weight)) * linear(x, self.up_proj.weight), self.down_proj.weight)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()
            self.mlp = Mlp()
            self.input_layernorm = RMSNorm()
            self.post_attention_layernorm = RMSNorm()

        def forward(self, h, cos, sin, cache=None, start=0, mask=None):
            h = h + self.self_attn(self.input_layernorm(h), cos, sin, cache, start, mask)
            return h + self.mlp(self.post_attention_layernorm(h))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(args.vocab, args.hidden)
            self.layers = nn.ModuleList([Block() for _ in range(args.layers)])
            self.norm = RMSNorm()
            self.lm_head = None if args.tied else nn.Linear(args.hidden, args.vocab, bias=False)
            self.checkpointing = False
            self.reentrant = True
            with torch.no_grad():  # HF init, as ours: N(0, 0.02^2), norms at 1
                for name, p in self.named_parameters():
                    if name.endswith("norm.weight"):
                        p.fill_(1.0)
                    else:
                        p.normal_(0, 0.02)

        def head_weight(self):
            return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

        def tables(self, scaling_length, start, n, device, dtype):
            inv = torch.tensor([1.0 / args.rope_theta ** (2.0 * i / head_dim) for i in range(head_dim // 2)], dtype=torch.float64)
            angles = torch.outer(torch.arange(start, start + n, dtype=torch.float64), inv)
            both = torch.cat([angles, angles], dim=-1)
            return both.cos().to(dtype=dtype, device=device), both.sin().to(dtype=dtype, device=device)

        def hidden(self, ids):
            n = ids.shape[1]
            cos, sin = self.tables(n, 0, n, ids.device, compute)
            h = self.embed_tokens(ids)
            for layer in self.layers:
                if self.checkpointing and torch.is_grad_enabled():
                    import torch.utils.checkpoint as cp
                    h = cp.checkpoint(layer, h, cos, sin, use_reentrant=self.reentrant)
                else:
                    h = layer(h, cos, sin)
            return self.norm(h)

        def logits(self, h):
            return linear(h, self.head_weight()).to(torch.float32)

        def loss(self, ids, targets, chunk):
            h = self.hidden(ids)
            flat = targets.reshape(-1)
            if chunk > 0 and flat.shape[0] > chunk:
                return ChunkedCrossEntropy.apply(h.reshape(-1, args.hidden), self.head_weight(), flat, chunk)
            return F.cross_entropy(self.logits(h).view(-1, args.vocab), flat)

        def hidden_with_cache(self, ids, cache, start, scaling_length):
            n = ids.shape[1]
            cos, sin = self.tables(scaling_length, start, n, ids.device, compute)
            mask = None
            if start > 0 and n > 1:
                mask = torch.arange(start + n, device=ids.device).unsqueeze(0) <= torch.arange(start, start + n, device=ids.device).unsqueeze(1)
                if groups > 1:
                    mask = mask.repeat(groups, 1)
            h = self.embed_tokens(ids)
            for i, layer in enumerate(self.layers):
                h = layer(h, cos, sin, cache.layer(i), start, mask)
            return self.norm(h)

    class ChunkedCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, targets, chunk):
            n = hidden.shape[0]
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_hidden = torch.empty_like(hidden)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            wc = weight.to(compute)
            for s in range(0, n, chunk):
                h = hidden[s:s + chunk].to(compute)
                t = targets[s:s + chunk]
                log_probs = F.log_softmax(F.linear(h, wc).to(torch.float32), -1)
                loss -= log_probs.gather(1, t.unsqueeze(1)).sum()
                g = log_probs.exp_()
                g.scatter_add_(1, t.unsqueeze(1), torch.full((t.shape[0], 1), -1.0, device=g.device))
                g = g.div_(n).to(compute)
                grad_hidden[s:s + chunk].copy_(g @ wc)
                grad_weight.add_(g.t() @ h)
            ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
            return loss / n

        @staticmethod
        def backward(ctx, grad_output):
            grad_hidden, grad_weight = ctx.saved_tensors
            return grad_hidden * grad_output, grad_weight * grad_output, None, None

    return Llama()


def matmul_parameters(args):
    d, head_dim = args.hidden, args.hidden // args.heads
    kv = args.kv_heads * head_dim
    return args.layers * (2 * d * d + 2 * d * kv + 3 * d * args.intermediate) + args.vocab * d


# ---------------------------------------------------------------- train

def optimizer_kwargs(args):
    kwargs = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    if args.optimizer == "fused":
        kwargs["fused"] = True
    elif args.optimizer == "foreach":
        kwargs["foreach"] = True
    else:
        kwargs.update(foreach=False, fused=False)
    return kwargs


def plain_optimizer_step(torch, args, params):
    """AdamW on the parameters themselves (explicit scheme; FSDP2's sharded float32 parameters), after clipping."""
    opt = torch.optim.AdamW(params, **optimizer_kwargs(args))

    def optimizer_step():
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return optimizer_step


def implied_tokens_per_s(args, context, ranks, round_s, step_s):
    """A whole step of --batch-tokens: its micro-batches in rounds of one per rank (rank r takes r, r+N, ...), then one optimizer step."""
    sequences = max(1, round(args.batch_tokens / context))
    micro_batches = -(-sequences // args.micro_batch)
    rounds = -(-micro_batches // ranks)
    return sequences * context / (rounds * round_s + step_s)


def train(torch, args):
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    bf16 = args.precision == "bf16"
    lean = args.scheme == "lean"
    autocast = bf16 and args.scheme == "autocast"
    compute = torch.bfloat16 if bf16 and not autocast else torch.float32
    started = time.perf_counter()
    with device:  # parameters are created (and initialised) on the device
        model = build(torch, args, compute)
    model.checkpointing = args.checkpointing
    model.reentrant = args.reentrant
    model.train()

    if lean:
        # fp32 master weights (exact copies of the fp32 init), then bf16 parameters; gradients go into fp32 buffers.
        host = args.offload == "cpu"
        master = []
        for p in model.parameters():
            m = torch.empty(p.shape, dtype=torch.float32, device="cpu" if host else device, pin_memory=host and cuda)
            m.copy_(p.detach())
            master.append(m)
        if bf16:
            model.to(torch.bfloat16)
        params = list(model.parameters())
        grads32 = [torch.zeros(p.shape, dtype=torch.float32, device=device) for p in params]
        for p, g in zip(params, grads32):
            def fold(p, g=g):
                g.add_(p.grad)
                p.grad = None
            p.register_post_accumulate_grad_hook(fold)
        if host:
            host_grads = [torch.empty(m.shape, dtype=torch.float32, pin_memory=cuda) for m in master]
            for m, hg in zip(master, host_grads):
                m.grad = hg
        else:
            for m, g in zip(master, grads32):
                m.grad = g
        opt = torch.optim.AdamW(master, **optimizer_kwargs(args))

        def optimizer_step():
            if host:
                for g, hg in zip(grads32, host_grads):
                    hg.copy_(g, non_blocking=True)
                sync(torch, device)
            torch.nn.utils.clip_grad_norm_(master, args.max_grad_norm)
            opt.step()
            with torch.no_grad():
                for p, m in zip(params, master):
                    p.copy_(m, non_blocking=True)
                for g in grads32:
                    g.zero_()
    else:
        params = list(model.parameters())
        optimizer_step = plain_optimizer_step(torch, args, params)

    sync(torch, device)
    setup_s = time.perf_counter() - started
    print(f"twin: model built in {setup_s:.1f} s ({sum(p.numel() for p in params):,} parameters, scheme {args.scheme}, offload {args.offload})",
          file=sys.stderr, flush=True)
    results = measure(torch, args, device, micro_batch_fn(torch, args, model, device, autocast), optimizer_step, params)
    return {"contexts": results, "scheme": args.scheme, "offload": args.offload, "optimizer": args.optimizer, "setup_s": setup_s,
            "parameters": sum(p.numel() for p in params), "matmul_parameters": matmul_parameters(args)}


def micro_batch_fn(torch, args, model, device, autocast):
    def micro_batch(inputs, targets):
        if autocast:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                loss = model.loss(inputs, targets, args.loss_chunk)
        else:
            loss = model.loss(inputs, targets, args.loss_chunk)
        loss.backward()
        return loss.item()
    return micro_batch


def measure(torch, args, device, micro_batch, optimizer_step, params, ranks=1):
    """Per context: warm-up steps, timed micro-batches, timed optimizer steps. On one process an out-of-memory
    context is reported and the longer ones skipped; among ranks it is raised (a rank cannot leave a collective
    half done, so the whole torchrun fails and says which rank)."""
    cuda = device.type == "cuda"
    results = []
    failed = None
    for context in sorted(set(ints(args.contexts))):
        row = {"context": context}
        if failed is not None:
            row["error"] = f"not run: a shorter context failed ({failed})"
            results.append(row)
            continue
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            batch = torch.randint(args.vocab, (args.micro_batch, context + 1), device=device)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            losses = []
            for _ in range(args.warmup):
                losses.append(micro_batch(inputs, targets))
                optimizer_step()
            sync(torch, device)
            start = time.perf_counter()
            for _ in range(args.micro_batches):
                losses.append(micro_batch(inputs, targets))
            sync(torch, device)
            micro = (time.perf_counter() - start) / args.micro_batches
            start = time.perf_counter()
            for _ in range(args.optimizer_steps):
                optimizer_step()
            sync(torch, device)
            step_s = (time.perf_counter() - start) / max(1, args.optimizer_steps)
            row.update(micro_batch_s=micro, tokens=args.micro_batch * context * args.micro_batches, tokens_per_s=args.micro_batch * context / micro,
                       optimizer_step_s=step_s, implied_tokens_per_s=implied_tokens_per_s(args, context, ranks, micro, step_s),
                       loss_first=losses[0], loss_last=losses[-1])
            print(f"twin: context {context:,}: {row['tokens_per_s']:,.0f} tokens/s per micro-batch, optimizer step {step_s:.3f} s",
                  file=sys.stderr, flush=True)
        except torch.OutOfMemoryError as e:
            if ranks > 1:
                raise
            failed = str(e).split("\n")[0][:300]
            row["error"] = failed
            print(f"twin: context {context:,}: {failed}", file=sys.stderr, flush=True)
            for p in params:
                p.grad = None
        if cuda:
            free, total = torch.cuda.mem_get_info(device)
            row.update(max_memory_allocated=torch.cuda.max_memory_allocated(device), max_memory_reserved=torch.cuda.max_memory_reserved(device),
                       device_used_bytes=total - free, device_total_bytes=total)
        results.append(row)
    return results


# ---------------------------------------------------------------- train on N GPUs (torchrun)

def train_distributed(torch, args):
    """The twin of `wf bench train --gpus N`, one process per rank under torchrun (RANK, WORLD_SIZE, LOCAL_RANK).

    FSDP2 rather than DDP + ZeroRedundancyOptimizer, because FSDP2 is what our trainer does (ZeRO stage 2) and DDP +
    ZeroRedundancyOptimizer is not: DDP all-reduces whole gradients, so every rank would hold fp32 gradients (and
    here fp32 master weights) of the whole model, i.e. ZeRO-1, 28 GB more per GPU at 7B than ours, and twice the
    gradient traffic. With FSDP2: each block (and the root: embedding, final norm, head) is a fully_shard unit; the
    sharded float32 parameters are the master weights and AdamW (fused) steps them; MixedPrecisionPolicy(bf16
    parameters, float32 reduction) all-gathers bf16 copies for compute (the lean scheme; explicit and fp32 keep
    float32 parameters); reshard_after_forward=False keeps the gathered bf16 parameters from the forward through the
    backward (ZeRO-2 / SHARD_GRAD_OP: no second all-gather), and each block's gradients are reduce-scattered in
    float32 as the backward produces them, every micro-batch, as ours. The parameters are gathered again before each
    forward (prefetched, overlapped), where ours gathers them once after the optimizer step. --offload cpu:
    CPUOffloadPolicy (shards, gradients and AdamW on the host). Activation checkpointing is the non-reentrant variant
    (FSDP2's hooks and the reentrant variant do not mix). The same seed gives every rank the same initial weights;
    each rank draws its own batches. NCCL on CUDA, gloo on CPU. Rank 0 prints the result: per context the slowest
    rank's times, the sum of the ranks' tokens, the largest rank's memory, and each rank's own row ("per_rank").
    """
    import datetime
    import os
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard, register_fsdp_forward_method

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = args.device.startswith("cuda")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=float(os.environ.get("WF_COLLECTIVE_TIMEOUT", "300"))))
    try:
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        bf16 = args.precision == "bf16"
        autocast = bf16 and args.scheme == "autocast"
        compute = torch.bfloat16 if bf16 and not autocast else torch.float32
        started = time.perf_counter()
        with device:
            model = build(torch, args, compute)  # float32: what FSDP2 shards becomes the master weights
        model.checkpointing = args.checkpointing
        model.reentrant = False
        model.train()
        mesh = init_device_mesh(device.type, (world,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 and args.scheme == "lean" else MixedPrecisionPolicy()
        offload = CPUOffloadPolicy(pin_memory=cuda) if args.offload == "cpu" else OffloadPolicy()
        for unit in list(model.layers) + [model]:
            fully_shard(unit, mesh=mesh, reshard_after_forward=False, mp_policy=mp, offload_policy=offload)
        register_fsdp_forward_method(model, "loss")  # the root's hooks run around loss(), our entry point
        params = list(model.parameters())  # the sharded float32 parameters
        optimizer_step = plain_optimizer_step(torch, args, params)
        if cuda:
            torch.cuda.empty_cache()  # the unsharded float32 build is freed: start the measurement without it
        sync(torch, device)
        setup_s = time.perf_counter() - started
        print(f"twin: rank {rank}: model built and sharded over {world} ranks in {setup_s:.1f} s", file=sys.stderr, flush=True)
        torch.manual_seed(args.seed + 1 + rank)  # each rank its own batches
        rows = measure(torch, args, device, micro_batch_fn(torch, args, model, device, autocast), optimizer_step, params, ranks=world)
    except BaseException as e:
        text = str(e).strip().split("\n")[0][:300]
        print(f"twin: rank {rank} failed: {type(e).__name__}: {text}", file=sys.stderr, flush=True)
        raise

    everyone = [None] * world
    dist.all_gather_object(everyone, rows)
    setups = [None] * world
    dist.all_gather_object(setups, setup_s)
    dist.destroy_process_group()
    contexts = [combine(args, [ranks_rows[i] for ranks_rows in everyone], world) for i in range(len(rows))]
    return {"contexts": contexts, "scheme": args.scheme, "offload": args.offload, "optimizer": args.optimizer, "setup_s": max(setups),
            "parameters": sum(p.numel() for p in params), "matmul_parameters": matmul_parameters(args), "world_size": world,
            "parallelism": "FSDP2 (fully_shard per block and root, reshard_after_forward=False)", "rank": rank}


def combine(args, rows, ranks):
    """One context over all ranks: the slowest rank's times, the ranks' tokens summed, the largest rank's memory."""
    row = {"context": rows[0]["context"], "ranks": ranks, "per_rank": rows}
    failed = next((r["error"] for r in rows if "error" in r), None)
    if failed is not None:
        row["error"] = failed
        return row
    micro = max(r["micro_batch_s"] for r in rows)
    step_s = max(r["optimizer_step_s"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    implied = implied_tokens_per_s(args, row["context"], ranks, micro, step_s)
    row.update(micro_batch_s=micro, optimizer_step_s=step_s, tokens=tokens, tokens_per_s=tokens / (micro * args.micro_batches),
               tokens_per_s_per_gpu=tokens / (micro * args.micro_batches) / ranks, implied_tokens_per_s=implied,
               implied_tokens_per_s_per_gpu=implied / ranks, loss_first=rows[0]["loss_first"], loss_last=rows[0]["loss_last"])
    for key in ("max_memory_allocated", "max_memory_reserved", "device_used_bytes", "device_total_bytes"):
        if all(key in r for r in rows):
            row[key] = max(r[key] for r in rows)
    return row


# ---------------------------------------------------------------- prefill

class LayerCache:
    """One layer's keys and values, [batch, kv_heads, capacity, head_dim] (see KvCache)."""

    def __init__(self, owner):
        self.owner, self.k, self.v = owner, None, None

    def write(self, k, v, start):
        end = start + k.shape[2]
        if self.k is None or self.k.shape[0] != k.shape[0] or self.k.shape[2] < end:
            capacity = max(end, self.owner.reserved)
            shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
            new_k = self.owner.torch.empty(shape, dtype=k.dtype, device=k.device)
            new_v = self.owner.torch.empty(shape, dtype=k.dtype, device=k.device)
            if self.k is not None and self.k.shape[0] == k.shape[0] and start > 0:
                new_k[:, :, :start].copy_(self.k[:, :, :start])
                new_v[:, :, :start].copy_(self.v[:, :, :start])
            self.k, self.v = new_k, new_v
        self.k[:, :, start:end].copy_(k)
        self.v[:, :, start:end].copy_(v)

    def keys(self, n):
        return self.k[:, :, :n]

    def values(self, n):
        return self.v[:, :, :n]


class KvCache:
    """The same cache as ours: allocated at the first write with the reserved capacity, truncation only moves length."""

    def __init__(self, torch, layers):
        self.torch = torch
        self.length = 0
        self.reserved = 0
        self.layers = [LayerCache(self) for _ in range(layers)]

    def layer(self, i):
        return self.layers[i]


class Generator:
    def __init__(self, torch, model, layers, chunk):
        self.torch, self.model, self.chunk = torch, model, chunk
        self.cache = KvCache(torch, layers)
        self.rope_scaling_length = 0

    def prefill(self, ids):
        n = ids.shape[1]
        end = self.cache.length + n
        scaling = max(end, self.rope_scaling_length)
        self.cache.reserved = max(self.cache.reserved, end)
        last = None
        for s in range(0, n, self.chunk):
            piece = ids[:, s:s + self.chunk]
            h = self.model.hidden_with_cache(piece, self.cache, self.cache.length, scaling)
            self.cache.length += piece.shape[1]
            if s + piece.shape[1] == n:
                last = self.model.logits(h[:, -1])
        return last

    def generate_greedy(self, prompt, max_new):
        self.cache.reserved = max(self.cache.reserved, self.cache.length + prompt.shape[1] + max_new)
        logits = self.prefill(prompt)
        out = []
        for step in range(max_new):
            nxt = logits.argmax(-1)
            out.append(nxt.cpu())
            if step == max_new - 1:
                break
            logits = self.prefill(nxt.unsqueeze(1))
        return self.torch.stack(out, 1).tolist()

    def truncate(self, length):
        self.cache.length = length


def grid_cells(torch, length, depths, needle_tokens, question_tokens, vocab, generator):
    """Synthetic needle cells of one length: haystack + needle at each depth + question, as in wf bench prefill."""
    hay_len = length - needle_tokens - question_tokens
    hay = torch.randint(vocab, (1, hay_len), generator=generator)
    needle = torch.randint(vocab, (1, needle_tokens), generator=generator)
    question = torch.randint(vocab, (1, question_tokens), generator=generator)
    positions = [round(d / (depths - 1) * hay_len) if depths > 1 else 0 for d in range(depths)]
    return hay, needle, question, positions


def prefill(torch, args):
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    weights = torch.bfloat16 if args.weights == "bf16" else torch.float32
    model = build(torch, args, weights).to(device=device, dtype=weights)
    model.eval()
    result = {"weights": args.weights, "chunk": args.chunk, "matmul_parameters": matmul_parameters(args)}
    lengths = ints(args.lengths)
    with torch.inference_mode():
        gen = Generator(torch, model, args.layers, args.chunk)
        runs = []
        if lengths:
            warm = torch.randint(args.vocab, (1, min(lengths[0], 2 * args.chunk)), device=device)
            gen.prefill(warm)
            gen.truncate(0)
        for length in lengths:
            ids = torch.randint(args.vocab, (1, length), device=device)
            best = math.inf
            for _ in range(args.repeats):
                gen.truncate(0)
                sync(torch, device)
                start = time.perf_counter()
                gen.prefill(ids)
                sync(torch, device)
                best = min(best, time.perf_counter() - start)
            runs.append({"length": length, "seconds": best, "tokens_per_s": length / best})
        result["prefill"] = runs

        grid_lengths = ints(args.grid_lengths)
        if grid_lengths and args.grid_depths > 0:
            rng = torch.Generator().manual_seed(args.seed)
            cells = [(length,) + grid_cells(torch, length, args.grid_depths, args.needle_tokens, args.question_tokens, args.vocab, rng)
                     for length in grid_lengths]
            outputs = {}
            timings = {}
            for reuse in (False, True):
                profiler = None
                if args.profile:
                    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
                    profiler.__enter__()
                sync(torch, device)
                start = time.perf_counter()
                prefilled = 0
                for length, hay, needle, question, positions in cells:
                    hay, needle, question = hay.to(device), needle.to(device), question.to(device)
                    gen.rope_scaling_length = length
                    gen.truncate(0)
                    cached = 0
                    for depth, pos in sorted(enumerate(positions), key=lambda x: x[1]):
                        if reuse:
                            anchor = pos - pos % max(1, args.reuse_align)
                            gen.truncate(cached)
                            if anchor > cached:
                                gen.prefill(hay[:, cached:anchor])
                                prefilled += anchor - cached
                                cached = anchor
                            rest = torch.cat([hay[:, anchor:pos], needle, hay[:, pos:], question], 1)
                        else:
                            gen.truncate(0)
                            rest = torch.cat([hay[:, :pos], needle, hay[:, pos:], question], 1)
                        prefilled += rest.shape[1]
                        tokens = gen.generate_greedy(rest, args.new_tokens)[0]
                        key = (length, depth)
                        if reuse:
                            outputs[key] = outputs[key] == tokens
                        else:
                            outputs[key] = tokens
                sync(torch, device)
                timings["with_reuse" if reuse else "without_reuse"] = {"seconds": time.perf_counter() - start, "prefilled_tokens": prefilled}
                if profiler is not None:
                    profiler.__exit__(None, None, None)
                    print(f"== reuse={reuse}", file=sys.stderr)
                    print(profiler.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60), file=sys.stderr)
            result["grid"] = dict(timings, cells=len(outputs), identical_outputs=sum(1 for v in outputs.values() if v is True),
                                  new_tokens=args.new_tokens)
    return result


if __name__ == "__main__":
    sys.exit(main())
