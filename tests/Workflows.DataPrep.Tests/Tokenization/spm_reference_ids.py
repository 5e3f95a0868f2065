#!/usr/bin/python3
"""Reference LLaMA-2 ids from the real SentencePiece, in the golden format, for any SlimPajama .jsonl.zst files.

    /usr/bin/python3 spm_reference_ids.py tokenizer.model OUT_DIR file1.jsonl.zst [file2 ...]

For each input writes OUT_DIR/<name>.u16 (little-endian uint16 ids, documents back to back) and
OUT_DIR/<name>.index.tsv (doc, set, text_sha256, offset, count), exactly like shared/corpus/golden, using
SentencePieceProcessor.encode(text) (no BOS/EOS). Needs Debian's python3-sentencepiece and the zstd command.
Also prints the single-thread encode speed of the reference (tokens/s, encode calls only).
"""
import array
import hashlib
import json
import os
import subprocess
import sys
import time

import sentencepiece as spm

model, out_dir, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
sp = spm.SentencePieceProcessor(model_file=model)
os.makedirs(out_dir, exist_ok=True)
total_tokens = total_seconds = 0.0
for path in inputs:
    name = os.path.basename(path).removesuffix(".jsonl.zst")
    raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout.decode("utf-8")
    ids_all = array.array("H")
    rows = []
    doc = 0
    for line in raw.split("\n"):
        if not line:
            continue
        record = json.loads(line)
        text = record["text"]
        started = time.perf_counter()
        ids = sp.encode(text)
        total_seconds += time.perf_counter() - started
        total_tokens += len(ids)
        rows.append((doc, record.get("meta", {}).get("redpajama_set_name", ""),
                     hashlib.sha256(text.encode("utf-8")).hexdigest(), len(ids_all), len(ids)))
        ids_all.extend(ids)
        doc += 1
    if sys.byteorder != "little":
        ids_all.byteswap()
    with open(os.path.join(out_dir, name + ".u16"), "wb") as f:
        ids_all.tofile(f)
    with open(os.path.join(out_dir, name + ".index.tsv"), "w") as f:
        f.write("doc\tset\ttext_sha256\toffset\tcount\n")
        for row in rows:
            f.write("\t".join(map(str, row)) + "\n")
    print(f"{name}: {doc} documents, {len(ids_all)} tokens", file=sys.stderr)
print(f"reference sentencepiece {spm.__version__} python encode: {int(total_tokens)} tokens in {total_seconds:.2f} s "
      f"= {total_tokens / total_seconds / 1e6:.3f}M tokens/s (single thread)")
