#!/usr/bin/env bash
# The README's first command: set up from a fresh clone and run the smoke experiment as far as the product goes today
# (validate -> plan -> prepare data -> train on CPU; the engine that chains these as one durable run is being built).
# Needs only the .NET 10 SDK (global.json) on PATH. Everything else is restored from NuGet by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=${WF_DEMO_OUT:-out/smoke}

echo "== restore and build =="
dotnet build src/Workflows.Cli -c Release --nologo -v quiet -clp:ErrorsOnly
wf() { dotnet src/Workflows.Cli/bin/Release/net10.0/wf.dll "$@"; }

echo "== validate every experiment and workflow template =="
wf validate experiments/ workflows/

echo "== plan the smoke experiment =="
wf plan experiments/smoke.yaml

echo "== prepare its data (shipped public-domain sample, GPT-2 tokenizer) =="
rm -rf "$out"
wf prep experiments/smoke.yaml --out "$out/data"

echo "== train the 2-layer model on CPU =="
wf train experiments/smoke.yaml --data "$out/data" --out "$out/train"

echo
echo "data:    $out/data (manifest.json, shards, stats.json, length-histogram.png, source-mix.png)"
echo "model:   $out/train/final-model (HuggingFace layout), metrics: $out/train/metrics.jsonl"
