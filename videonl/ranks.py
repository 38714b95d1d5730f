"""This process's rank and the number of processes in the run: 0 and 1 without a process group.

In the lowest layer, so that the data layer (which shards videos over ranks) and the engine share one definition.
"""

import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
