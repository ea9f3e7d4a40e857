"""The state of the machine around a timed window: what a careful reader asks before trusting a
number. CPU: frequency governor, current clock, load average before and after. GPU (NVML, where
pynvml and a device are present): clocks, temperature, power and throttle reasons sampled
during the window. Peak memory of the measuring process, and of the device where it applies."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from pathlib import Path
from typing import Any

# NVML throttle reasons that mean the clocks were held down by the machine, not by idleness or
# an application clock setting (nvmlClocksEventReason* / nvmlClocksThrottleReason* bits).
THROTTLE_BITS = {0x2: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal_slowdown",
                 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
                 0x100: "display_clock_setting"}


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


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class GpuSampler:
    """Samples NVML every `interval` seconds in a thread while the timed window runs."""

    def __init__(self, device_index: int = 0, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.static: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
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
        throttled = sorted(name for bit, name in THROTTLE_BITS.items() if reasons & bit)

        def span(key: str) -> list[float]:
            values = [s[key] for s in self.samples]
            return [min(values), max(values)]

        return {**self.static, "samples": len(self.samples), "sm_mhz": span("sm_mhz"),
                "mem_mhz": span("mem_mhz"), "temperature_c": span("temperature_c"),
                "power_w": span("power_w"), "memory_used_mib_max": span("memory_used_mib")[1],
                "throttle_reasons": throttled, "throttled": bool(throttled)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
