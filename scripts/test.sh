#!/usr/bin/env bash
# The project's test command (README quick start, CONTRIBUTING.md; .ci/run calls it). Builds the solution once, runs every test
# project, and ends with one summary line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

dotnet build Workflows.sln -c Release --nologo -v quiet -clp:ErrorsOnly
set +e
dotnet test Workflows.sln -c Release --no-build --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Each test project prints "Passed!  - Failed: F, Passed: P, Skipped: S, Total: T ..." (or "Failed! ...").
awk '/(Passed|Failed)! +- Failed: /{
        gsub(",", "");
        for (i = 1; i <= NF; i++) {
          if ($i == "Failed:") f += $(i+1);
          if ($i == "Passed:") p += $(i+1);
          if ($i == "Skipped:") s += $(i+1);
        }
      }
      END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
