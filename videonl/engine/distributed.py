"""Process-group set-up for torchrun and the few collective helpers the engine needs.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a plain `python train_net.py` sets
none and runs as a single process without a process group.
"""

import os
from typing import Any, List

import torch
import torch.distributed as dist

from videonl.config import ConfigError
from videonl.ranks import rank, world_size  # noqa: F401  (the engine's helpers, shared with the data layer)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def restart_hazard() -> str:
    """Why torchrun's restarts (--max-restarts) may fail to re-form this run's process group, or ''.

    By default torchrun's agents lend their processes one store for every restart, and a restarted process can
    read the addresses the previous, dead, processes left there: the group then fails to form and one lost
    process costs several restarts (pytorch/pytorch#135712; measured in docs/many_machines.md).
    """
    shared_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if shared_store and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0:
        return ("torchrun may restart this run (--max-restarts) but shares its store across restarts, so a restart can "
                "fail to re-form the process group and cost more restarts: set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                "where torchrun starts (pytorch/pytorch#135712)")
    return ""


def is_main_process() -> bool:
    """Only this process writes logs, checkpoints and reports."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def select_device(name: str) -> torch.device:
    """DEVICE auto | cpu | cuda: under torchrun each process takes the GPU of its LOCAL_RANK."""
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"DEVICE must be auto, cpu or cuda, got '{name}'")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DEVICE is cuda but torch sees no GPU (set DEVICE cpu or auto)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank())
    return torch.device("cuda", local_rank())


def init_process_group(device: torch.device) -> None:
    """Join torchrun's process group: NCCL between GPUs, gloo between CPU processes."""
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather_objects(value: Any) -> List[Any]:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values)."""
    if world_size() == 1:
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: Any) -> Any:
    """Rank 0's value, on every rank (a picklable value)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
