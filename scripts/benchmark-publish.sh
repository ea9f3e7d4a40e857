#!/usr/bin/env bash
# The benchmark workflow's publishing job (GitHub-hosted), also run by tests/test_workflows.py:
# put every profile's new docs from ARTIFACTS/benchmark-<profile>/reports/ (the measure jobs'
# artifacts as download-artifact lays them out) into reports/<profile>/, and
# write the pull-request body, `deploybench compare` of the docs before (this checkout's) and
# after, to pr-body.md. Only reports/ changes. Usage: scripts/benchmark-publish.sh ARTIFACTS
set -euo pipefail
cd "$(dirname "$0")/.."
artifacts=${1:?usage: scripts/benchmark-publish.sh ARTIFACTS}
bash envs/setup-host.sh
export PATH="$PWD/.venv-host/bin:$PATH"
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
[ -d reports ] && cp -r reports/. "$before/"
found=0
for dir in "$artifacts"/*/reports; do
  [ -f "$dir/results.csv" ] || continue
  profile=$(basename "$(dirname "$dir")")
  profile=${profile#benchmark-}
  [[ $profile =~ ^[A-Za-z0-9._-]+$ ]] || { echo "error: bad profile name '$profile'" >&2; exit 2; }
  rm -rf "reports/$profile" && mkdir -p reports && cp -r "$dir" "reports/$profile"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || { echo "error: no profile's docs under $artifacts/*/reports" >&2; exit 1; }
deploybench machines reports  # reports/README.md: every profile, the machines side by side
deploybench compare "$before" reports --out pr-body.md --summary-json compare-summary.json
echo "published $found profile(s); pull-request body in pr-body.md"
