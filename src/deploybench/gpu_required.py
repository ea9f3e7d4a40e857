"""`require_gpu`: a run for a GPU fails before its first job when the GPU cannot be reached.

Without it a cuda cell on a machine without a (reachable) GPU is skipped, with the reason, which
is right for a laptop and wrong for a GPU runner: there, every CUDA cell would be skipped, the
run would succeed and its pull request would report nothing measured.
"""

from __future__ import annotations

import os
from typing import Any

from deploybench.backends.base import REQUIRE_GPU_ENV, cuda_device_reason
from deploybench.errors import UserError

# What the image's Python prints when its torch sees the GPU it was given.
PROBE = ("import sys, torch; ok = torch.cuda.is_available(); "
         "print(torch.cuda.get_device_name(0) if ok else 'no CUDA device seen by torch'); "
         "sys.exit(0 if ok else 3)")


def check_gpu_reachable(config: dict[str, Any]) -> str:
    """The GPU the run's steps will use (its name), or a UserError that says why it cannot be
    reached and what to fix. Sets REQUIRE_GPU_ENV for the local jobs this process starts."""
    os.environ[REQUIRE_GPU_ENV] = "1"
    if config["runtime"] == "docker":
        from deploybench.container.image import ImageSpec
        from deploybench.container.run import run_step

        code = run_step(["python", "-c", PROBE, "--device", "cuda"],
                        ImageSpec.of_config(config), require_gpu=True)
        if code:
            raise UserError("this run requires a GPU (config require_gpu) and the step image "
                            "sees none (its probe printed the reason above); check the "
                            "runner with `docker run --rm --gpus all <image> nvidia-smi` "
                            "(docs/self-hosted-runner.md, \"A failing GPU\")")
        return "the GPU given to the step image"
    cuda_device_reason()  # raises, naming what is missing
    import torch

    return torch.cuda.get_device_name(0)
