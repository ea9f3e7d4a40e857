#!/usr/bin/env bash
# Install the cpu image's pinned stack into /opt/venv, as envs/setup.sh does on a host, from the
# wheelhouse only (no index): torch CPU, the mmcv wheel built on the host, the rest.
set -euo pipefail
envs=$1 wheels=$2
python3.11 -m venv /opt/venv
pip=(/opt/venv/bin/pip install --disable-pip-version-check --no-cache-dir -q
     --no-index --find-links "$wheels" -c "$envs/constraints.txt")
"${pip[@]}" setuptools wheel numpy torch
"${pip[@]}" --no-build-isolation mmcv
"${pip[@]}" -r "$envs/requirements.txt"
/opt/venv/bin/python -c "import mmcv.ops, mmdet, mmseg, onnxruntime, torch; \
print('stack ok:', torch.__version__, mmcv.__version__, onnxruntime.get_device())"
