#!/usr/bin/env bash
# .venv-host: the light host environment of `runtime: docker` (envs/requirements-host.txt), for
# the GPU runner and the docs-publishing job. Idempotent, like envs/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
stamp=.venv-host/.deploybench-setup
want=$(cat envs/requirements-host.txt envs/constraints.txt envs/setup-host.sh pyproject.toml \
  | sha256sum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv-host/bin/python ] || "$python" -m venv .venv-host
pip=(.venv-host/bin/python -m pip install --disable-pip-version-check -q -c envs/constraints.txt)
"${pip[@]}" -r envs/requirements-host.txt
"${pip[@]}" --no-deps -e .
.venv-host/bin/deploybench --help > /dev/null
echo "$want" > "$stamp"
