"""The state of the machine around a timed window: what a careful reader asks before trusting a
number. CPU: frequency governor, current clock, load average before and after. GPU (NVML, where
pynvml and a device are present): clocks, temperature, power and throttle reasons sampled
during the window. Peak memory of the measuring process, and of the device where it applies."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

# NVML's clock event reasons that mean the machine held the clocks down (power, heat, a
# hardware signal), not idleness or a clock setting; their bits are pynvml's own
# (nvmlClocksEventReason*, nvmlClocksThrottleReason* before NVML 12.4).
THROTTLE_REASONS = {"SwPowerCap": "sw_power_cap", "HwSlowdown": "hw_slowdown",
                    "SwThermalSlowdown": "sw_thermal_slowdown",
                    "HwThermalSlowdown": "hw_thermal_slowdown",
                    "HwPowerBrakeSlowdown": "hw_power_brake_slowdown"}


def throttle_bits(nvml: Any) -> dict[int, str]:
    """bit -> name of each of THROTTLE_REASONS, from the pynvml module `nvml`."""
    bits = {}
    for reason, name in THROTTLE_REASONS.items():
        value = getattr(nvml, f"nvmlClocksEventReason{reason}", None)
        if value is None:
            value = getattr(nvml, f"nvmlClocksThrottleReason{reason}")
        bits[int(value)] = name
    return bits


def cpu_state() -> dict[str, Any]:
    governors = set()
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            governors.add(path.read_text().strip())
        except OSError:
            continue
    mhz: list[float] = []
    with contextlib.suppress(OSError, ValueError):
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
    return {"governor": ",".join(sorted(governors)) or None,
            "mhz_mean": sum(mhz) / len(mhz) if mhz else None,
            "loadavg_1m": os.getloadavg()[0]}


def _process_seconds(pid: int | str) -> float:
    """CPU seconds of one process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: tuple[int, ...] = ()) -> tuple[float, float, float] | None:
    """(busy seconds of every CPU, steal seconds, CPU seconds of this process and `pids`)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    busy = user + nice + system + irq + softirq
    mine = _process_seconds("self") + sum(_process_seconds(p) for p in pids)
    return busy / ticks, steal / ticks, mine


class OtherLoad:
    """How much CPU time *other* processes took while a window ran, in cores (CPU seconds per
    second), and what the hypervisor stole: the direct measure of a busy machine that the
    1-minute load average (which counts this process too, and lags) is not. `pids`: the
    processes that are part of the measurement (a group's workers)."""

    def __init__(self, pids: list[int] | tuple[int, ...] = ()) -> None:
        self.pids = tuple(pids)

    def __enter__(self) -> OtherLoad:
        self.start, self.t0 = _cpu_seconds(self.pids), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end, self.t1 = _cpu_seconds(self.pids), time.perf_counter()

    def summary(self) -> dict[str, float] | None:
        if self.start is None or self.end is None or self.t1 <= self.t0:
            return None
        wall = self.t1 - self.t0
        busy, steal, mine = (e - s for s, e in zip(self.start, self.end, strict=True))
        return {"other_cores": max(0.0, (busy - mine) / wall), "steal_cores": steal / wall,
                "window_s": wall}


REFERENCE_KERNEL = "a 256 x 256 float32 matmul x 8 in numpy (its BLAS, all cores)"


def _kernel_ms(a: Any) -> float:
    """One run of REFERENCE_KERNEL on `a`, in ms."""
    t0 = time.perf_counter_ns()
    for _ in range(8):
        a @ a
    return (time.perf_counter_ns() - t0) / 1e6


def _kernel_input() -> Any:
    import numpy as np

    return np.ones((256, 256), np.float32)


def reference_workload_ms(seconds: float = 0.25) -> float:
    """Median time of a fixed compute kernel (REFERENCE_KERNEL): timed before and after each
    cell, its spread across a run is the machine's own noise floor, and a cell whose kernel
    ran slower than the run's quietest is flagged."""
    a = _kernel_input()
    for _ in range(20):  # the BLAS thread pool's start and first touch are not the machine
        a @ a
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 10:
        samples.append(_kernel_ms(a))
    return float(sorted(samples)[len(samples) // 2])


def reference_reading_ms(samples: int = 3) -> float:
    """One quick reading of REFERENCE_KERNEL (the median of `samples` runs, a few ms), taken
    between a long workload's steps (training iterations) without stopping it for long: the
    median of a window's readings is its machine-speed index."""
    a = _kernel_input()
    a @ a  # the BLAS threads may have slept through the step before
    return float(sorted(_kernel_ms(a) for _ in range(samples))[samples // 2])


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class GpuSampler:
    """Samples NVML every `interval` seconds in a thread while the timed window runs."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.static: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            from deploybench.gpu_device import nvml_handle

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.bits = throttle_bits(pynvml)
            self.handle = nvml_handle(pynvml)  # this process's cuda:0, not NVML's GPU 0
            self.static = {"name": _text(pynvml.nvmlDeviceGetName(self.handle)),
                           "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
                           "cuda_driver": pynvml.nvmlSystemGetCudaDriverVersion()}
        except Exception:  # noqa: BLE001 - no NVML, no GPU: nothing to sample
            self.nvml = None

    def _sample(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        reasons_fn = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            n.nvmlDeviceGetCurrentClocksThrottleReasons
        return {"sm_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
                "mem_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
                "temperature_c": n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
                "power_w": n.nvmlDeviceGetPowerUsage(h) / 1000,
                "memory_used_mib": n.nvmlDeviceGetMemoryInfo(h).used / 2**20,
                "reasons": int(reasons_fn(h))}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self._sample())

    def __enter__(self) -> GpuSampler:
        if self.nvml is not None:
            self.samples.append(self._sample())
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.samples.append(self._sample())

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        reasons = 0
        for s in self.samples:
            reasons |= s["reasons"]
        throttled = sorted(name for bit, name in self.bits.items() if reasons & bit)

        def span(key: str) -> list[float]:
            values = [s[key] for s in self.samples]
            return [min(values), max(values)]

        return {**self.static, "samples": len(self.samples), "sm_mhz": span("sm_mhz"),
                "mem_mhz": span("mem_mhz"), "temperature_c": span("temperature_c"),
                "power_w": span("power_w"), "memory_used_mib_max": span("memory_used_mib")[1],
                "throttle_reasons": throttled, "throttled": bool(throttled),
                "clocks_event_mask": reasons}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
