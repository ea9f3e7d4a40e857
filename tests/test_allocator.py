"""The workers' heap policy: a call's large temporaries come back from the heap, not from new
pages that fault in every call (measure/allocator.py)."""

from __future__ import annotations

import json
import subprocess
import sys

# Tensors of mixed sizes, allocated and freed as a forward pass does; the minor page faults of
# each pass after the first few.
PASSES = """
import json, resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from deploybench.measure.allocator import keep_freed_memory
    print(json.dumps(keep_freed_memory()))
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(12):
    start = faults()
    for mib in (1, 3, 2, 5, 1):
        temporaries = [np.ones(mib * 2**17) for _ in range(4)]
        del temporaries
    counts.append(faults() - start)
print(json.dumps(counts[4:]))
"""


def passes(mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PASSES, mode], capture_output=True, text=True,
                         check=True)
    return out.stdout.splitlines()


def test_freed_memory_is_kept_so_that_no_pass_faults() -> None:
    default = json.loads(passes("default")[-1])
    settings, kept = passes("keep")
    # glibc's own policy hands pages back and faults them in again on every pass
    assert min(default) > 1000, default
    assert max(json.loads(kept)) < 10, kept
    assert json.loads(settings) == {"malloc M_MMAP_THRESHOLD": str(32 * 2**20),
                                    "malloc M_TRIM_THRESHOLD": str(2**31 - 1)}
