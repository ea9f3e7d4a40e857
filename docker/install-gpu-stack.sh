#!/usr/bin/env bash
# The gpu image's build stage: /opt/venv from the hash-pinned locks and the wheelhouse alone,
# mmcv 2.1.0 compiled with every CUDA op for TORCH_CUDA_ARCH_LIST, then the compiler removed.
# Usage: install-gpu-stack.sh LOCKS WHEELHOUSE
set -euo pipefail
locks=$1 wheels=$2
python3.11 -m venv /opt/venv
pip=(/opt/venv/bin/pip install --disable-pip-version-check --no-cache-dir -q --no-index
     --find-links "$wheels")
# Everything but mmcv (a source archive, built below against this torch); the locks are
# complete, so no resolution is needed.
grep -v '^mmcv==' "$locks/gpu-image.lock" > /tmp/runtime-no-mmcv.lock
"${pip[@]}" --require-hashes --no-deps -r /tmp/runtime-no-mmcv.lock -r "$locks/gpu-build.lock"
# TensorRT, from NVIDIA's index on the host (envs/tensorrt.txt): present where it was reachable.
if compgen -G "$wheels/tensorrt_cu13_libs-*.whl" > /dev/null; then
  "${pip[@]}" --no-deps -r "$locks/tensorrt.txt"
else
  echo "note: no TensorRT wheels in the wheelhouse: the image has no TensorRT" >&2
fi

# nvcc and the CUDA headers are the pip wheels' (nvidia/cu13); torch's extension build wants a
# CUDA_HOME with lib64/ and the unversioned runtime library.
cuda=/opt/venv/lib/python3.11/site-packages/nvidia/cu13
ln -sfn lib "$cuda/lib64"
ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
grep '^mmcv==' "$locks/gpu-image.lock" > /tmp/mmcv.lock
start=$SECONDS
CUDA_HOME=$cuda PATH="$cuda/bin:/opt/venv/bin:$PATH" MMCV_WITH_OPS=1 FORCE_CUDA=1 \
  MAX_JOBS=${MAX_JOBS:-$(nproc)} \
  /opt/venv/bin/pip wheel --disable-pip-version-check --no-cache-dir --no-index --no-deps \
  --find-links "$wheels" \
  --no-build-isolation --require-hashes -r /tmp/mmcv.lock -w /tmp/mmcv-wheel
echo "mmcv compiled in $((SECONDS - start)) s for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
"${pip[@]}" --no-deps /tmp/mmcv-wheel/mmcv-*.whl

# The runtime image carries no compiler: the build-only wheels go, and the links made above.
mapfile -t build_only < <(grep -v '^#' "$locks/gpu-build.lock" | sed 's/==.*//' \
  | grep -v -x -F -f <(grep -v '^#' "$locks/gpu-image.lock" | sed 's/==.*//'))
/opt/venv/bin/pip uninstall -q -y "${build_only[@]}"
rm -f "$cuda/lib64" "$cuda/lib/libcudart.so"
/opt/venv/bin/pip check
/opt/venv/bin/python -c "import mmcv.ops, mmdet, mmseg, onnxruntime, torch; \
print('stack ok:', torch.__version__, torch.version.cuda, mmcv.__version__, onnxruntime.__version__)"
