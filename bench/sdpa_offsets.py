"""Times one prefill chunk of cached attention (scaled_dot_product_attention with a boolean "key <= query" mask)
at chunk offsets that are and are not multiples of 8/16/64, to see whether the kernel PyTorch picks depends on
the alignment of the key length. Used to explain the needle-grid timings of `wf bench prefill` (docs/evaluation.md).

    python bench/sdpa_offsets.py [--heads 16] [--head-dim 64] [--chunk 4096] [--base 65536] [--device cuda]
"""
import argparse, json, time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--base", type=int, default=65536)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    import torch
    import torch.nn.functional as F
    dev = torch.device(a.device)
    cap = a.base + 2 * a.chunk + 128
    kbuf = torch.randn(1, a.heads, cap, a.head_dim, device=dev, dtype=torch.bfloat16)
    vbuf = torch.randn_like(kbuf)
    q = torch.randn(1, a.heads, a.chunk, a.head_dim, device=dev, dtype=torch.bfloat16)
    rows = []
    for extra in (0, 1, 8, 16, 37, 64, 100):
        start = a.base + extra
        end = start + a.chunk
        k, v = kbuf[:, :, :end], vbuf[:, :, :end]
        qpos = torch.arange(start, end, device=dev).unsqueeze(1)
        kpos = torch.arange(end, device=dev).unsqueeze(0)
        mask = kpos <= qpos
        for kind, m in (("bool", mask), ("additive", torch.zeros(mask.shape, device=dev, dtype=torch.bfloat16).masked_fill(~mask, float("-inf")))):
            F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            torch.cuda.synchronize(dev)
            t = time.perf_counter()
            for _ in range(a.iters):
                F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            torch.cuda.synchronize(dev)
            ms = (time.perf_counter() - t) / a.iters * 1e3
            flops = 4 * a.heads * a.head_dim * a.chunk * end
            rows.append({"start": start, "start_mod_16": start % 16, "mask": kind, "ms": round(ms, 3), "tflops": round(flops / ms / 1e9, 1)})
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
