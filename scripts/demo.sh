#!/usr/bin/env bash
# The README's first command: set up from a fresh clone and run the smoke experiment as far as the product goes today.
# Needs only the .NET 10 SDK (global.json) on PATH. Everything else is restored from NuGet/npm by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

echo "== restore and build =="
dotnet build src/Workflows.Cli -c Release --nologo -v quiet -clp:ErrorsOnly
wf() { dotnet src/Workflows.Cli/bin/Release/net10.0/wf.dll "$@"; }

echo "== validate every experiment and workflow template =="
wf validate experiments/ workflows/

echo "== plan the smoke experiment =="
wf plan experiments/smoke.yaml

echo "== plan the paper's recommended run (per-source, 5B tokens, 80K) =="
wf plan experiments/per-source-5b-80k.yaml
