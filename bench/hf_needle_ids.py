#!/usr/bin/env python3
"""Check wf's needle prompts against HuggingFace's own LLaMA tokenizer.

wf builds the paper's needle prompts in C#: SentencePiece-exact ids plus an emulation of what HuggingFace
transformers does around them (encode adds BOS, "<s>" written as text becomes id 1 with a dummy prefix per piece,
decode renders BOS as "<s>"; see src/Workflows.Evaluation/Needle/HfTokenizerBehaviour.cs). This script builds the
same prompts with transformers' LlamaTokenizer(Fast) from a tokenizer.model, following the paper's needle procedure
(read the haystack files in sorted order until the longest context is reached, encode and trim to the context length,
insert the needle at the depth moved back to the previous period token, decode, fill the prompt template, encode),
and compares every prompt id with wf's.

    wf eval needle experiments/per-source-5b-80k.yaml --prompt-ids out/hf-check/ours.json --out out/hf-check \\
        --tokenizer tokenizer.model --haystack PaulGrahamEssays
    python3 bench/hf_needle_ids.py --tokenizer tokenizer.model --ours out/hf-check/ours.json --haystack PaulGrahamEssays

Prints one line of JSON: per tokenizer variant, how many prompts are identical and the first difference. Needs
transformers, sentencepiece (and protobuf for the fast tokenizer's conversion); no GPU.
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import time


def haystack_sha256(folder):
    """wf's Haystack.ContentHash: SHA-256 of name\\0text\\0name\\0text... in ordinal name order, texts read like Python."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
    parts = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            parts.append(name + "\0" + f.read())
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def read_haystack(folder, count_tokens, max_tokens):
    """Whole passes over the sorted files until the text has at least max_tokens tokens."""
    files = sorted(glob.glob(os.path.join(folder, "*.txt")))
    passes = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            passes.append(f.read())
    one_pass = "".join(passes)
    text = ""
    while count_tokens(text) < max_tokens:
        text += one_pass
    return text


class PromptBuilder:
    """The paper's needle prompt, built with a HuggingFace tokenizer (one instance per tokenizer and BOS setting)."""

    def __init__(self, tok, sample, haystack_folder, fix_bos_leak):
        self.tok = tok
        self.add_special = not fix_bos_leak
        self.needle = sample["needle"]
        self.buffer = sample["final_context_length_buffer"]
        self.periods = set(sample["period_ids"])
        template = sample["prompt_template"]
        before, after = template.split("{context}", 1)
        question = sample["question"]
        self.before = before.replace("{question}", question)
        self.after = after.replace("{question}", question)
        self.haystack = read_haystack(haystack_folder, lambda t: len(self.encode(t)), sample["max_context_length"])
        self.haystack_ids = self.encode(self.haystack)
        self.needle_ids = self.encode(self.needle)
        self.contexts = {}

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=self.add_special)

    def context_ids(self, length):
        if length not in self.contexts:
            text = self.haystack
            if len(self.haystack_ids) > length:
                text = self.tok.decode(self.haystack_ids[:length])
            self.contexts[length] = self.encode(text)
        return self.contexts[length]

    def build(self, length, depth):
        ctx = self.context_ids(length)
        budget = length - self.buffer
        if len(ctx) + len(self.needle_ids) > budget:
            ctx = ctx[: budget - len(self.needle_ids)]
        if depth == 100:
            point = len(ctx)
        else:
            point = int(len(ctx) * (depth / 100))
            while point > 0 and ctx[point - 1] not in self.periods:
                point -= 1
        ids = ctx[:point] + self.needle_ids + ctx[point:]
        prompt = self.before + self.tok.decode(ids) + self.after
        return point, self.tok(prompt)["input_ids"]


def variants(tokenizer_path):
    """Tokenizer constructions to try: the paper ran AutoTokenizer (fast) under transformers 4.35 (legacy Llama behaviour)."""
    from transformers import LlamaTokenizer, LlamaTokenizerFast

    return {
        "fast-legacy": lambda: LlamaTokenizerFast(vocab_file=tokenizer_path, legacy=True, from_slow=True),
        "fast-default": lambda: LlamaTokenizerFast(vocab_file=tokenizer_path),
        "slow-legacy": lambda: LlamaTokenizer(vocab_file=tokenizer_path, legacy=True),
    }


def compare(name, make, sample, haystack, cells_limit):
    started = time.time()
    try:
        tok = make()
    except Exception as e:  # a construction this transformers version does not support is reported, not fatal
        return {"error": f"{type(e).__name__}: {e}"}
    builders = {}
    identical, differ, first = 0, 0, None
    for cell in sample["cells"][:cells_limit]:
        fix = cell["fix_bos_leak"]
        if fix not in builders:
            builders[fix] = PromptBuilder(tok, sample, haystack, fix)
        point, ids = builders[fix].build(cell["context_length"], cell["depth_percent"])
        ours = cell["prompt_ids"]
        if ids == ours and point == cell["insertion_point"]:
            identical += 1
            continue
        differ += 1
        if first is None:
            at = next((i for i, (a, b) in enumerate(zip(ids, ours)) if a != b), min(len(ids), len(ours)))
            window = slice(max(0, at - 5), at + 6)
            first = {
                "fix_bos_leak": fix,
                "context_length": cell["context_length"],
                "depth_percent": cell["depth_percent"],
                "insertion_point": {"hf": point, "ours": cell["insertion_point"]},
                "lengths": {"hf": len(ids), "ours": len(ours)},
                "first_differing_index": at,
                "hf": ids[window],
                "ours": ours[window],
                "hf_pieces": tok.convert_ids_to_tokens(ids[window]),
                "ours_pieces": tok.convert_ids_to_tokens(ours[window]),
            }
    return {"identical": identical, "differ": differ, "seconds": round(time.time() - started, 1), "first_difference": first}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="LLaMA-2 tokenizer.model")
    parser.add_argument("--ours", required=True, help="JSON written by 'wf eval needle --prompt-ids'")
    parser.add_argument("--haystack", required=True, help="the haystack folder the JSON was built from (its hash is checked)")
    parser.add_argument("--variants", default="fast-legacy,fast-default,slow-legacy", help="comma-separated tokenizer constructions")
    parser.add_argument("--cells", type=int, default=10**9, help="compare only the first N prompts")
    args = parser.parse_args()

    with open(args.ours, encoding="utf-8") as f:
        sample = json.load(f)
    if sample.get("format") != "wf-needle-prompts/1":
        sys.exit(f"{args.ours}: not a wf needle prompt sample (format {sample.get('format')!r})")
    sha = haystack_sha256(args.haystack)
    if sha != sample["haystack_sha256"]:
        sys.exit(f"{args.haystack}: haystack sha256 {sha[:12]} is not the one the prompts were built from ({sample['haystack_sha256'][:12]})")

    import transformers

    try:
        import tokenizers

        tokenizers_version = tokenizers.__version__
    except ImportError:
        tokenizers_version = None
    available = variants(args.tokenizer)
    results = {}
    for name in args.variants.split(","):
        if name not in available:
            sys.exit(f"unknown variant {name!r}; choose from {', '.join(available)}")
        results[name] = compare(name, available[name], sample, args.haystack, args.cells)
    print(json.dumps({
        "transformers": transformers.__version__,
        "tokenizers": tokenizers_version,
        "ours_tokenizer": sample["tokenizer_id"],
        "haystack_sha256": sha[:12],
        "prompts": min(len(sample["cells"]), args.cells),
        "results": results,
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
