#!/usr/bin/env bash
# The README's first command: set up from a fresh clone and run the smoke experiment end to end on the local default
# (Azurite on 127.0.0.1, started and stopped by wf): prepare data -> train (CPU) -> needle evaluation -> report,
# as one durable run. Needs the .NET 10 SDK and Node.js 20 + npm on PATH; everything else is restored here.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

echo "== restore and build; install the pinned Azurite =="
dotnet build src/Workflows.Cli -c Release --nologo -v quiet -clp:ErrorsOnly
(cd infra/azurite && npm ci --ignore-scripts --no-audit --no-fund --silent)
wf() { dotnet src/Workflows.Cli/bin/Release/net10.0/wf.dll "$@"; }

echo "== validate every experiment and workflow template =="
wf validate experiments/ workflows/

echo "== plan the smoke experiment =="
wf plan experiments/smoke.yaml

echo "== run it: prepare-data -> train -> evaluate -> report (prints where the report and heatmap landed) =="
wf run experiments/smoke.yaml
