#!/usr/bin/env bash
# Compile and lint the Bicep templates; writes infra/main.json (the ARM template azd would deploy).
#
#   infra/build.sh            # uses `bicep` on PATH, else `az bicep` (installing it with `az bicep install`)
#   BICEP=/path/to/bicep infra/build.sh
#
# Fails on any compiler or linter warning. The Bicep CLI is a .NET binary published on GitHub and
# NuGet only: none of the package registries this project's machines reach (PyPI, npm, Debian) ships
# it, so on those machines this script stops with exit code 3 and tests/unit/test_consistency.py is
# the check that runs (see infra/README.md).
set -euo pipefail
cd "$(dirname "$0")"

if [[ -n "${BICEP:-}" ]]; then
  bicep=("$BICEP")
elif command -v bicep >/dev/null 2>&1; then
  bicep=(bicep)
elif command -v az >/dev/null 2>&1; then
  if ! az bicep version >/dev/null 2>&1; then
    az bicep install
  fi
  bicep=(az bicep)
else
  echo "build.sh: no Bicep CLI here (neither 'bicep' nor 'az' on PATH, BICEP unset)." >&2
  echo "Install it from https://aka.ms/bicep-install (or 'az bicep install'), then rerun." >&2
  exit 3
fi

"${bicep[@]}" --version 2>/dev/null || "${bicep[@]}" version
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
"${bicep[@]}" build main.bicep --outfile main.json 2>&1 | tee "$log" || status=1
for file in main.bicep app/*.bicep; do
  "${bicep[@]}" lint "$file" 2>&1 | tee -a "$log" || status=1
done
if grep -Eq ': (Warning|Error) ' "$log"; then
  echo "build.sh: the compiler or linter reported warnings or errors" >&2
  status=1
fi
if [[ $status -eq 0 ]]; then
  echo "build.sh: infra/main.json written; no warnings."
fi
exit "$status"
