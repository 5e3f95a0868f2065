#!/usr/bin/env bash
# What a new user does, from the packed tool: dotnet tool install -> wf init in an empty folder -> wf run the example.
# .ci/run calls it after the tests. Storage is the local default: the pinned Azurite, installed on first use into a
# fresh per-user folder (WF_HOME) through npm, so Node.js >= 20 and npm must be on PATH. Ends with "packed tool: ok".
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
unset WF_STORAGE_CONNECTION_STRING WF_STORAGE_ACCOUNT_URL WF_AZURITE_DIR
export WF_HOME="$work/home"

version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/src/Workflows.Cli/Workflows.Cli.csproj")"
echo "== pack wf $version =="
dotnet pack "$repo/src/Workflows.Cli" -c Release -v quiet -o "$work/nupkg"
echo "== install =="
dotnet tool install wf --version "$version" --tool-path "$work/tool" --add-source "$work/nupkg" --ignore-failed-sources
wf="$work/tool/wf"

echo "== init, validate, plan, run in an empty folder =="
mkdir "$work/experiments-repo"
cd "$work/experiments-repo"
"$wf" init
"$wf" validate experiments/ workflows/
validator="$repo/infra/ci-tools/node_modules/.bin/action-validator"
if [[ -x "$validator" ]]; then
  for f in .github/workflows/*.yml; do "$validator" "$f"; echo "ok  scaffolded $f"; done
fi
"$wf" plan experiments/example.yaml > /dev/null
"$wf" run experiments/example.yaml
report="$(ls out/runs/*/report/report.md)"
grep -q "Mean score" "$report"
test -f "$(dirname "$report")/needle-heatmap.png"
test -d "$WF_HOME/azurite" && test -f .wf/azurite/data/__azurite_db_blob__.json
echo "packed tool: ok ($report)"
