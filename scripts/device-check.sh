#!/usr/bin/env bash
# One quick GPU check (about 10 minutes) for a bare GPU machine that has Python and a CUDA
# build of torch but no registry, TensorRT, onnxruntime-gpu or mmcv: installs the OpenMMLab
# stack from a carried wheelhouse, compiles mmcv's ops there, runs the embedded default's
# PyTorch, TorchScript and torch.compile cells on the GPU (deploybench.device_check: one table)
# and tests/test_gpu.py.
#   scripts/device-check.sh --prepare   on a machine with the registries: fills
#                                       .cache/device-wheels (for the GPU machine's Python)
#   scripts/device-check.sh             on the GPU machine, with .cache/device-wheels carried
# PYTHON: the GPU machine's interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=.cache/device-wheels
python=${PYTHON:-python3}
# The OpenMMLab stack and what it imports, less what the GPU machine has (torch, numpy, onnx).
packages=(mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 addict yapf termcolor rich
          pyyaml opencv-python-headless pycocotools shapely terminaltables six tqdm prettytable
          ftfy regex packaging pillow matplotlib pytest)
if [ "${1:-}" = --prepare ]; then
  version=${DEVICE_PYTHON:-3.12}
  rm -rf "$wheels" && mkdir -p "$wheels"
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$python" -m pip download -q -d "$wheels" \
    --only-binary :all: --python-version "$version" --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "${packages[@]}" \
    --no-deps
  # mmcv's source archive as published, checked against the gpu image's pinned hash (pip
  # would build its metadata to download it, and that needs torch).
  "$python" - "$wheels" <<'PY'
import hashlib, json, re, sys, urllib.request
want = re.search(r"^mmcv==2\.1\.0 --hash=sha256:(\w+)", open("envs/gpu-image.lock").read(), re.M)[1]
page = urllib.request.urlopen("https://pypi.org/simple/mmcv/", timeout=60).read().decode()
url = re.search(r'href="([^"#]*/mmcv-2\.1\.0\.tar\.gz)', page)[1]
data = urllib.request.urlopen(url, timeout=300).read()
assert hashlib.sha256(data).hexdigest() == want, "mmcv 2.1.0's archive does not match its pin"
open(f"{sys.argv[1]}/{url.rsplit('/', 1)[1]}", "wb").write(data)
PY
  size=$(du -sm "$wheels" | cut -f1)
  echo "$wheels: ${size} MiB"
  # A lent device machine takes 64 MiB of carried files: what it already has can be left out.
  [ "$size" -le 64 ] || echo "note: over 64 MiB; the largest:" \
    "$(ls -S "$wheels" | head -3 | tr '\n' ' ')" >&2
  exit 0
fi

start=$SECONDS
"$python" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, 'CUDA', torch.version.cuda)"
[ -d "$wheels" ] || { echo "error: no $wheels: run scripts/device-check.sh --prepare first" >&2; exit 2; }
venv=.cache/device-venv
"$python" -m venv --system-site-packages "$venv"  # the machine's own torch
pip=("$venv/bin/python" -m pip install -q --no-index --find-links "$wheels" --no-deps)
"${pip[@]}" "${packages[@]}"
# mmcv's ops for mmdet's imports; CPU ops only where there is no nvcc (the timed networks need
# none of its CUDA kernels).
if command -v nvcc > /dev/null; then export FORCE_CUDA=1; fi
MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) "${pip[@]}" --no-build-isolation mmcv==2.1.0
"${pip[@]}" --no-build-isolation -e .
echo "installed in $((SECONDS - start)) s"
"$venv/bin/python" -m deploybench.device_check --device cuda || status=$?
"$venv/bin/python" -m pytest -p no:cacheprovider -q -rs tests/test_gpu.py || status=$?
echo "device check done in $((SECONDS - start)) s"
exit "${status:-0}"
