#!/usr/bin/env bash
# Install deploybench's pinned stack into /opt/venv, as envs/setup.sh does on a host.
#   cpu: from the wheelhouse only (no index): torch CPU, the mmcv wheel built on the host, the rest.
#   gpu: from the package index: torch (CUDA), mmcv 2.1.0 compiled with its CUDA ops, the
#        requirement set with the GPU packages in place of the CPU onnxruntime.
set -euo pipefail
target=$1 envs=$2 wheels=$3
python3.11 -m venv /opt/venv
pip=(/opt/venv/bin/pip install --disable-pip-version-check --no-cache-dir -q)
if [ "$target" = cpu ]; then
  pip+=(--no-index --find-links "$wheels" -c "$envs/constraints.txt")
  "${pip[@]}" setuptools wheel numpy torch
  "${pip[@]}" --no-build-isolation mmcv
  "${pip[@]}" -r "$envs/requirements.txt"
else
  grep -v '^onnxruntime==' "$envs/requirements.txt" > /tmp/requirements-gpu-image.txt
  grep -v '^onnxruntime==' "$envs/constraints.txt" > /tmp/constraints-gpu-image.txt
  cat "$envs/constraints-gpu.txt" >> /tmp/constraints-gpu-image.txt
  pip+=(-c /tmp/constraints-gpu-image.txt)
  "${pip[@]}" setuptools wheel numpy torch
  MMCV_WITH_OPS=1 FORCE_CUDA=1 "${pip[@]}" --no-build-isolation mmcv
  "${pip[@]}" -r /tmp/requirements-gpu-image.txt -r "$envs/requirements-gpu.txt"
fi
/opt/venv/bin/python -c "import mmcv.ops, mmdet, mmseg, onnxruntime, torch; \
print('stack ok:', torch.__version__, mmcv.__version__, onnxruntime.get_device())"
