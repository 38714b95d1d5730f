"""Wall time and peak memory of a callable, on the CPU or a CUDA device."""

import contextlib
import multiprocessing
import os
import resource
import statistics
import time
from typing import Callable, Dict, Iterator, Mapping

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _seconds(fn: Callable[[], object], device: torch.device,
             clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    fn()
    _sync(device)
    return clock() - start


def measure(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeat: int = 3) -> Dict[str, float]:
    """Median seconds per call over `repeat` calls after `warmup`, and peak memory in MiB.

    On CUDA the peak is `torch.cuda.max_memory_allocated` during the calls. On the CPU it is how far the
    process's peak resident size rose above its size before the calls: exact only in a process that has
    done little else, so run CPU cases through `isolated`.
    """
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start_mib = torch.cuda.memory_allocated(device) / 2**20
    else:
        start_mib = _resident_mib()
    for _ in range(warmup):
        fn()
    _sync(device)
    times = [_seconds(fn, device) for _ in range(repeat)]
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": statistics.median(times), "peak_mib": max(0.0, peak_mib - start_mib)}


def interleaved(fns: Mapping[str, Callable[[], object]], device: torch.device, warmup: int = 1,
                repeat: int = 3, clock: Callable[[], float] = time.perf_counter) -> Dict[str, float]:
    """Median seconds per call of each of `fns`, called in turn, the order reversed every other round
    (a, b, b, a, a, b, ...).

    Taking turns spreads a change in the load of a shared machine over every callable alike, so the
    ratios of the medians hold where the medians themselves drift; reversing keeps any cost of coming
    first or after another from falling on one callable only. `clock` may be `time.process_time` for CPU
    work: the CPU time of this process, which a loaded machine disturbs much less than the wall time.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times = {name: [] for name in fns}
    for round_ in range(repeat):
        order = list(fns.items()) if round_ % 2 == 0 else list(fns.items())[::-1]
        for name, fn in order:
            times[name].append(_seconds(fn, device, clock))
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _child(target, args, conn) -> None:
    conn.send(target(*args))


def isolated(target: Callable[..., Dict], *args) -> Dict:
    """`target(*args)` run in a fresh process, so its CPU memory peak is its own.

    A spawned (not forked) process: forking after torch has used its OpenMP threads hangs the child.
    `target` and `args` must be picklable (a module-level function and plain values).
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(target, args, sender))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = None
    process.join()
    if result is None:
        raise RuntimeError(f"benchmark case {target.__name__}{args} died (exit code {process.exitcode})")
    return result


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """`count` torch threads inside the block, the process's former count after it: a benchmark called from
    Python (or a test) must not leave its caller on one thread, where CPU convolutions pick other kernels."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pin_cores(count: int) -> None:
    """Run this process (and the threads and workers it starts) on the first `count` of its cores, with as
    many torch threads: per-core figures, less disturbed by the machine's other work."""
    cores = sorted(os.sched_getaffinity(0))
    if not 1 <= count <= len(cores):
        raise ValueError(f"cannot pin to {count} cores: this process may use {len(cores)}")
    os.sched_setaffinity(0, cores[:count])
    torch.set_num_threads(count)
