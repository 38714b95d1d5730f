"""Wall time and peak memory of a callable, on the CPU or a CUDA device."""

import resource
import statistics
import time
from typing import Callable, Dict

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeat: int = 3) -> Dict[str, float]:
    """Median seconds per call over `repeat` calls after `warmup`, and peak memory in MiB.

    On CUDA the peak is `torch.cuda.max_memory_allocated` during the timed calls; on the CPU it is the
    process's peak resident set size, which only grows, so compare CPU peaks within one run with care.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": statistics.median(times), "peak_mib": peak}
