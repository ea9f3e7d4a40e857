# deploybench's gpu image: one CUDA stack, the one in the pinned wheels (torch 2.13.0's CUDA
# 13.0 libraries, cuDNN 9, onnxruntime-gpu, TensorRT 10); the driver comes from the NVIDIA
# Container Toolkit at run time. Two stages: `build` compiles mmcv's CUDA ops with nvcc from
# the same CUDA release, the runtime image takes its virtual environment without the compiler.
# Build with `deploybench image build --target gpu` (docker/README.md); every wheel is installed
# from docker/wheelhouse/ (filled on the host from envs/gpu-image.lock and envs/gpu-build.lock,
# hash-checked) with no index.
ARG BASE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE} AS system
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY docker/system-packages.sh /tmp/system-packages.sh
RUN bash /tmp/system-packages.sh runtime && rm /tmp/system-packages.sh

FROM system AS build
# The GPU architectures mmcv's kernels are compiled for (H100/H200: 9.0; add 8.0 for A100 and
# the Ampere/Ada cards, whose 8.x devices run sm_80 code).
ARG TORCH_CUDA_ARCH_LIST="9.0"
COPY docker/system-packages.sh /tmp/system-packages.sh
RUN bash /tmp/system-packages.sh compiler
COPY envs/gpu-image.lock envs/gpu-build.lock envs/tensorrt.txt /opt/locks/
COPY docker/wheelhouse/ /opt/wheelhouse/
COPY docker/install-gpu-stack.sh /opt/install-gpu-stack.sh
RUN TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" bash /opt/install-gpu-stack.sh /opt/locks /opt/wheelhouse

FROM system
COPY --from=build /opt/venv /opt/venv
COPY pyproject.toml /opt/deploybench/
COPY src/ /opt/deploybench/src/
COPY workflow/schemas/ /opt/deploybench/workflow/schemas/
RUN /opt/venv/bin/pip install --no-deps --no-index --no-build-isolation -q -e /opt/deploybench \
    && /opt/venv/bin/deploybench --help > /dev/null \
    && useradd --create-home --uid 1000 --shell /bin/bash deploybench

# ONNX Runtime's CUDA and TensorRT providers open CUDA, cuDNN and TensorRT by soname: the
# wheels' folders on the loader path find them whether or not torch or tensorrt was imported
# first (torch and the bindings load their own by path).
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib:/opt/venv/lib/python3.11/site-packages/tensorrt_libs \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/deploybench
CMD ["deploybench", "--help"]
ARG GIT_COMMIT=unknown
ARG CONTEXT_SHA256=unknown
ARG TORCH_CUDA_ARCH_LIST="9.0"
LABEL org.opencontainers.image.title="deploybench-gpu" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      io.deploybench.target="gpu" \
      io.deploybench.cuda-arch="${TORCH_CUDA_ARCH_LIST}" \
      io.deploybench.context-sha256="${CONTEXT_SHA256}"
