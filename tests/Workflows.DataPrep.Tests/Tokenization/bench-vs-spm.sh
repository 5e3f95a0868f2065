#!/usr/bin/env bash
# Single-thread speed of LlamaSentencePieceTokenizer next to the real SentencePiece C++ (spm_encode) on the same text:
# every line of the train split, each line one input (spm_encode's unit), then whole documents (data prep's unit).
#   apt-get install -y sentencepiece python3-sentencepiece zstd
#   tests/Workflows.DataPrep.Tests/Tokenization/bench-vs-spm.sh [path/to/shared/corpus]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
corpus="${1:-$repo/../shared/corpus}"
model="$corpus/tokenizers/llama2/tokenizer.model"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# the train split as text lines (JSON decoded; newlines inside documents end lines, as spm_encode reads them)
for f in "$corpus"/slimpajama-mini/train/*.jsonl.zst; do zstd -dc "$f"; done |
  /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    if line.strip(): sys.stdout.write(json.loads(line)["text"].rstrip("\n") + "\n")' >"$out/lines.txt"
dotnet build "$repo/tests/Workflows.DataPrep.Tests" -c Release >/dev/null
for round in 1 2 3; do
  start=$(date +%s.%N)
  taskset -c 0 spm_encode --model="$model" --output_format=id <"$out/lines.txt" >"$out/spm.ids"
  end=$(date +%s.%N)
  tokens=$(wc -w <"$out/spm.ids")
  python3 -c "print(f'spm_encode (C++ {\"$(dpkg-query -W -f='${Version}' sentencepiece)\"}), round $round: $tokens tokens in {$end-$start:.2f} s = {$tokens/($end-$start)/1e6:.3f}M tokens/s (single thread, whole process)')"
  WF_TOKENIZER_BENCH_LINES="$out/lines.txt" WF_TOKENIZER_BENCH_OUT="$out/ours.txt" WF_SPM_CORPUS="$corpus" \
    taskset -c 0 dotnet test "$repo/tests/Workflows.DataPrep.Tests" -c Release --no-build \
    --filter "Category=Benchmark" >"$out/test.log" 2>&1 || { cat "$out/test.log"; exit 1; }
  sed "s/^/ours, round $round: /" "$out/ours.txt"
done
