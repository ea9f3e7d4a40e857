#!/usr/bin/env bash
# The embedded default's GPU cells end to end on a machine with an NVIDIA GPU: PyTorch (fp32,
# fp16), TorchScript, torch.compile, ONNX Runtime CUDA EP (fp32, fp16) and TensorRT EP, and
# TensorRT engines (fp32, fp16, int8). Prints the latency table; the docs land in
# reports/<profile>/ as with `make pipeline`. Usage: scripts/gpu-cells.sh [cores]
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${1:-$(nproc)}

nvidia-smi -L || { echo "error: no NVIDIA GPU visible (nvidia-smi failed)" >&2; exit 2; }
bash envs/setup.sh
if [ "${SKIP_GPU_INSTALL:-0}" != 1 ]; then
  .venv/bin/python -m pip uninstall -q -y onnxruntime || true
  .venv/bin/python -m pip install -q -c envs/constraints.txt -r envs/requirements-gpu.txt \
    -r envs/tensorrt.txt --extra-index-url https://pypi.nvidia.com
fi
export PATH="$PWD/.venv/bin:$PATH"
python -c "import torch; assert torch.cuda.is_available(), 'PyTorch sees no CUDA device'"

matrix='{models: [], devices: [cuda], precisions: [fp32, fp16, int8],
  backends: [pytorch, torchscript, torch_compile, onnxruntime, onnxruntime_trt, tensorrt]}'
start=$SECONDS
snakemake --cores "$cores" --keep-going --config matrix="$matrix" || status=$?
profile=$(python -c "from deploybench.provenance import hardware_profile as h; print(h())")
echo "GPU cells done in $((SECONDS - start)) s; reports/$profile/benchmark.md"
sed -n '/^## Latency$/,/^### Latency statistics$/p' "reports/$profile/benchmark.md"
sed -n '/^## Cells that did not run$/,/^## Environment$/p' "reports/$profile/benchmark.md"
exit "${status:-0}"
