#!/usr/bin/env bash
# Match rate of LlamaSentencePieceTokenizer against the real SentencePiece (Debian's 0.1.97) on the TRAIN split
# (and the validation split, to check that the Debian build agrees with shared/corpus/golden).
#   apt-get install -y sentencepiece python3-sentencepiece zstd
#   tests/Workflows.DataPrep.Tests/Tokenization/compare-with-sentencepiece.sh [path/to/shared/corpus]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
corpus="${1:-$repo/../shared/corpus}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$repo/tests/Workflows.DataPrep.Tests/Tokenization/spm_reference_ids.py" \
  "$corpus/tokenizers/llama2/tokenizer.model" "$out" \
  "$corpus"/slimpajama-mini/train/*.jsonl.zst "$corpus"/slimpajama-mini/validation/*.jsonl.zst 2>"$out/python.log"
WF_SPM_REFERENCE_DIR="$out" WF_SPM_CORPUS="$corpus" dotnet test "$repo/tests/Workflows.DataPrep.Tests" -c Release \
  --filter "Category=SentencePieceReference" --logger "console;verbosity=normal" >"$out/test.log" 2>&1 || { cat "$out/test.log"; exit 1; }
cat "$out/match-rate.txt"
