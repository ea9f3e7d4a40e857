"""Which physical GPU a process's `cuda:0` is, in NVML's numbering.

NVML numbers every GPU of the machine by PCI bus and ignores CUDA_VISIBLE_DEVICES; CUDA numbers
only the visible ones, fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID. A runner pinned to
GPU 3 must sample GPU 3's clocks, power and memory, not GPU 0's: deploybench sets
CUDA_DEVICE_ORDER=PCI_BUS_ID for its steps (so an index means the same GPU to CUDA, NVML and
nvidia-smi), and resolves the first visible device here, by index or by UUID.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from deploybench.errors import UserError


def pin_gpu_environment() -> None:
    """Before CUDA starts in this process or those it forks: CUDA's numbering by PCI bus, as
    NVML's and nvidia-smi's; and fp32 as IEEE fp32 in every library, TF32 off. PyTorch, ORT's
    CUDA EP and TensorRT engines turn TF32 off by their own switches; ORT's TensorRT EP has
    none, and cuDNN and cuBLAS heed only this variable. A value set by the user is kept."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")


def nvml_index(env: Mapping[str, str], uuids: Sequence[str]) -> int:
    """NVML's index of the process's cuda:0. `uuids`: every GPU's UUID, in NVML's order."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        if visible is not None:
            raise UserError("CUDA_VISIBLE_DEVICES is set but empty: the process sees no GPU")
        return 0
    first = visible.split(",")[0].strip()
    if first.isdigit():
        index = int(first)
        if env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") != "PCI_BUS_ID" and len(uuids) > 1:
            raise UserError(f"CUDA_VISIBLE_DEVICES={visible} names a GPU in CUDA's fastest-first "
                            "order, which NVML's numbering may not follow; set "
                            "CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPU by its UUID")
        if index >= len(uuids):
            raise UserError(f"CUDA_VISIBLE_DEVICES={visible}: there is no GPU {index} (NVML "
                            f"sees {len(uuids)}; `nvidia-smi -L` lists them)")
        return index
    # A UUID, or the unique prefix of one that CUDA also accepts.
    matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(first)]
    if len(matches) != 1:
        raise UserError(f"CUDA_VISIBLE_DEVICES={visible}: '{first}' names "
                        f"{'no' if not matches else 'more than one'} GPU of {', '.join(uuids)} "
                        "(`nvidia-smi -L` lists their UUIDs; MIG instances are not supported)")
    return matches[0]


def nvml_handle(nvml: Any) -> Any:
    """The NVML handle of this process's cuda:0 (nvml: the initialised pynvml module)."""
    count = nvml.nvmlDeviceGetCount()
    uuids = [_text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
             for i in range(count)]
    return nvml.nvmlDeviceGetHandleByIndex(nvml_index(os.environ, uuids))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
