#!/usr/bin/env bash
# Build the gpu image and prove in it what can be proved without a GPU; with a GPU attached
# (the images workflow on the runner), also run tests/test_gpu.py in it.
#   - mmcv's compiled extension loads and holds its CUDA ops' kernels (the image's label
#     io.deploybench.cuda-arch names the architectures they were compiled for);
#   - ONNX Runtime's CUDA and TensorRT provider libraries resolve against the image's own
#     libraries (the driver's libcuda.so.1 aside, which the NVIDIA Container Toolkit mounts);
#   - tensorrt imports (where the image has it); one CUDA runtime; no compiler;
#   - the provenance names the versions installed.
# Environment: DOCKER_BASE replaces the pinned base (no registry here), CUDA_ARCH the
# architectures, TENSORRT=0 builds without TensorRT where NVIDIA's index is unreachable (else
# an image without it fails), REQUIRE_GPU=1 fails where no GPU reaches a container (the
# runner: a broken NVIDIA Container Toolkit must not leave the images job green).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
deploybench=${DEPLOYBENCH:-deploybench}
args=(--target gpu)
[ -n "${DOCKER_BASE:-}" ] && args+=(--base "$DOCKER_BASE")
[ -n "${CUDA_ARCH:-}" ] && args+=(--cuda-arch "$CUDA_ARCH")
build_args=("${args[@]}")
[ "${TENSORRT:-1}" = 0 ] && build_args+=(--no-tensorrt)
# Named before the build: the name of the files the build reads.
image=$("$deploybench" image name "${args[@]}")
"$deploybench" image build "${build_args[@]}"
echo "built in $((SECONDS - start)) s: $image"
docker image inspect "$image" --format 'size: {{.Size}} bytes; labels: {{json .Config.Labels}}'

in_image() { docker run --rm -i --network none "$@"; }
in_image -e "TENSORRT=${TENSORRT:-1}" "$image" python - <<'PY'
import glob
import importlib.metadata as md
import importlib.util
import os
import re
import subprocess
import sys

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


site = next(p for p in sys.path if p.endswith("site-packages"))
# mmcv: the extension loads (no GPU needed) and carries device code for the asked arches.
import mmcv
from mmcv.ops import get_compiler_version, get_compiling_cuda_version

ext = glob.glob(f"{site}/mmcv/_ext*.so")[0]
cuda_version = get_compiling_cuda_version()
check(cuda_version.startswith("13."), f"mmcv {mmcv.__version__} _ext compiled with CUDA "
      f"{cuda_version}, {get_compiler_version()}")
# The runtime image has no binutils: the extension's bytes are read directly. Each CUDA op's
# host launcher is a mangled symbol (`_Z..NMSCUDAKernelLauncher...`).
binary = open(ext, "rb").read()
launchers = sorted({m.decode() for m in re.findall(rb"_Z\d+(\w+?)CUDAKernelLauncher", binary)})
check(len(launchers) > 50, f"{len(launchers)} CUDA ops: {', '.join(launchers)}")
check(b".nv_fatbin" in binary, "_ext carries a CUDA fat binary (.nv_fatbin)")
# CUDA's cubins are ELF files of machine EM_CUDA (190) inside the fat binary.
cubins = [m.start() for m in re.finditer(rb"\x7fELF", binary)
          if binary[m.start() + 18:m.start() + 20] == (190).to_bytes(2, "little")]
check(len(cubins) >= 50, f"{len(cubins)} device code images (cubins, one per CUDA source "
      "and architecture) in it")

# ONNX Runtime's providers: every library they need resolves, bar the driver (and TensorRT's
# where the image has none).
import onnxruntime

capi = os.path.dirname(onnxruntime.__file__) + "/capi"
has_trt = importlib.util.find_spec("tensorrt") is not None
for provider in ("cuda", "tensorrt"):
    lib = f"{capi}/libonnxruntime_providers_{provider}.so"
    out = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    missing = sorted(set(re.findall(r"^\s*(\S+) => not found", out, re.M)))
    allowed = {"libcuda.so.1"} | (set() if has_trt else {"libnvinfer.so.10",
                                                          "libnvonnxparser.so.10"})
    needed = re.findall(r"^\s*(lib(?:nvinfer|nvonnxparser|cudart|cublas|cudnn)\S*)", out, re.M)
    check(not set(missing) - allowed, f"{provider} provider needs {', '.join(needed)}; "
          f"not found: {', '.join(missing) or 'none'} (allowed: the driver's libcuda.so.1"
          f"{'' if has_trt else ' and TensorRT, absent from this image'})")
if has_trt:
    import tensorrt

    check(tensorrt.__version__.startswith("10."), f"tensorrt {tensorrt.__version__} imports")
elif os.environ["TENSORRT"] == "0":
    print("skip tensorrt: not in this image (TENSORRT=0: its wheels come from pypi.nvidia.com)")
else:
    check(False, "tensorrt is not in the image (TENSORRT=0 asks for an image without it)")

runtimes = [p for p in glob.glob(f"{site}/**/libcudart.so*", recursive=True)]
check(len(runtimes) == 1, f"one CUDA runtime: {runtimes}")
check(not any(os.access(os.path.join(d, c), os.X_OK) for d in os.environ["PATH"].split(":")
              for c in ("nvcc", "gcc", "g++", "cc")), "no compiler on PATH")
# (ninja stays: nncf needs it at run time.)
installed = {x.metadata["Name"] for x in md.distributions()}
build_only = [d for d in ("nvidia-cuda-nvcc", "nvidia-cuda-crt", "nvidia-nvvm",
                          "nvidia-cuda-cccl") if d in installed]
check(not build_only, f"no build-only wheels: {build_only or 'none'}")

import torch
from deploybench.provenance import package_versions, packages

versions = package_versions()
print("     provenance:", ", ".join(f"{k} {versions.get(k)}" for k in packages()))
check(versions.get("torch", "").startswith("2.13.0") and torch.version.cuda.startswith("13."),
      f"torch {torch.__version__}, CUDA {torch.version.cuda}")
check(versions.get("onnxruntime-gpu") == onnxruntime.__version__,
      f"provenance names onnxruntime-gpu {onnxruntime.__version__}")
check(versions.get("tensorrt", "not installed") != "not installed" or not has_trt,
      f"provenance names tensorrt: {versions.get('tensorrt')}")
sys.exit(1 if failures else 0)
PY

if docker run --rm --gpus all "$image" nvidia-smi -L 2> /dev/null; then
  in_image --gpus all -v "$PWD:$PWD:ro" -w "$PWD" -e HOME=/tmp "$image" \
    python -m pytest -p no:cacheprovider -q tests/test_gpu.py
elif [ "${REQUIRE_GPU:-0}" = 1 ]; then
  echo "FAIL no GPU reached a container (docker run --gpus all ... nvidia-smi -L failed):" \
    "check the NVIDIA driver and Container Toolkit (docs/self-hosted-runner.md)" >&2
  exit 1
else
  echo "skip tests/test_gpu.py in the image: no GPU can be given to a container here"
fi
echo "gpu image check passed in $((SECONDS - start)) s"
