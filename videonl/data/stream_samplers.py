"""Orders that read a split as streams: each rank and each of its loader workers gets one contiguous range of
the videos, so that a source read in order (`data.shards`) reads each shard once, whatever the split.

A DataLoader hands batch i of its sampler to worker i mod W (W = DATALOADER.NUM_WORKERS, or 1 without workers).
Both samplers here cut a rank's videos into W contiguous ranges, one per worker, and interleave their batches in
that round-robin, so each worker asks for the videos of its own range, in order. Which videos a rank gets,
exactly once, is the samplers' alone: a worker asked out of order (another loader's scheduling) only reads
again.

Training (`StreamTrainSampler`), epoch e with seed s:
  1. the epoch's order: the shards in a permutation drawn from (s, e), each shard's videos in stored order
     through a shuffle buffer of DATA.SHARD_SHUFFLE videos drawn from (s, e, shard) (a video leaves at most
     that many places ahead of where it is stored: what a worker holds in memory);
  2. the first G * floor(N / G) videos of that order (G = batch x ranks; the rest, fewer than G, is left out
     this epoch, as with files), rank r taking the r-th of the equal contiguous parts, cut into its W ranges
     of whole batches, the lower workers one batch more when the batches do not divide;
  3. each video with its own seed, from (s, e, its place in the epoch's order), as `loader.TrainSampler`.
A run resumed at batch b of epoch e draws the same order and skips what the first b batches of each worker's
range held (b // W or b // W + 1 batches): a skip count. Ranks and workers must then be as many as before.
Testing (`StreamTestSampler`): the videos (or the ones given, e.g. those an interrupted test left) in order,
cut into contiguous parts per rank (sizes differing by one at most), each into W ranges of whole batches (the
range holding the rank's last, short batch laid out last): every video exactly once, none left out.
"""

from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Sampler


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed of its own for every (run seed, epoch, position): numpy's SeedSequence hashes the triple."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


def split_evenly(count: int, parts: int) -> List[int]:
    """`count` things in `parts` parts, the first ones one larger when they do not divide."""
    return [count // parts + (part < count % parts) for part in range(parts)]


def round_robin(batches_per_worker: Sequence[int]) -> Iterator[Tuple[int, int]]:
    """(worker, its batch number) in the order a DataLoader takes batches from its workers."""
    for number in range(max(batches_per_worker, default=0)):
        for worker, batches in enumerate(batches_per_worker):
            if number < batches:
                yield worker, number


def shuffled_within(items: Sequence[int], buffer: int, rng: np.random.Generator) -> List[int]:
    """`items` through a shuffle buffer of `buffer` places: each leaves at most `buffer - 1` places before
    where it stood; 1 keeps the order."""
    held, out = [], []
    for item in items:
        held.append(item)
        if len(held) == buffer:
            pick = int(rng.integers(len(held)))
            held[pick], held[-1] = held[-1], held[pick]
            out.append(held.pop())
    rng.shuffle(held)
    return out + held


class EpochSampler(Sampler):
    """What the training orders share: an epoch of whole global batches (G = batch x ranks; fewer than G videos
    left out), `batches_per_epoch` of them, resumable at any batch (`set_epoch`); `source` says what holds the
    videos in an error."""

    def __init__(self, size: int, rank: int, world_size: int, batch_size: int, seed: int, source: str):
        global_batch = batch_size * world_size
        if size < global_batch:
            raise ValueError(f"the training {source} {size} videos, fewer than one global batch of {global_batch} "
                             f"(DATALOADER.TRAIN_BATCH_SIZE {batch_size} x {world_size} processes)")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.batch_size, self.seed = batch_size, seed
        self.batches_per_epoch = size // global_batch
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch < self.batches_per_epoch:
            raise ValueError(f"start batch {start_batch} outside the epoch's {self.batches_per_epoch} batches")
        self.epoch, self.start_batch = epoch, start_batch

    def generator(self) -> torch.Generator:
        """The epoch's generator of its permutation."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class StreamTrainSampler(EpochSampler):
    """This rank's (index, seed) pairs of one training epoch, worker ranges interleaved (the module's steps)."""

    def __init__(self, shard_sizes: Sequence[int], rank: int, world_size: int, batch_size: int, seed: int,
                 workers: int, shuffle_buffer: int):
        super().__init__(sum(shard_sizes), rank, world_size, batch_size, seed, "shards hold")
        self.shard_sizes, self.workers, self.shuffle_buffer = list(shard_sizes), workers, shuffle_buffer

    def epoch_order(self) -> List[int]:
        """Every video of the split in this epoch's order (step 1 of the module)."""
        starts = np.cumsum([0] + self.shard_sizes).tolist()
        order = []
        for shard in torch.randperm(len(self.shard_sizes), generator=self.generator()).tolist():
            rng = np.random.default_rng([self.seed, self.epoch, shard])
            order += shuffled_within(range(starts[shard], starts[shard + 1]), self.shuffle_buffer, rng)
        return order

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order = self.epoch_order()
        batches = split_evenly(self.batches_per_epoch, self.workers)
        first_batch = np.cumsum([0] + batches).tolist()  # of each worker's range, in the rank's part
        rank_start = self.rank * self.batches_per_epoch * self.batch_size
        for turn, (worker, number) in enumerate(round_robin(batches)):
            if turn < self.start_batch:
                continue
            first = rank_start + (first_batch[worker] + number) * self.batch_size
            for place in range(first, first + self.batch_size):
                yield order[place], sample_seed(self.seed, self.epoch, place)


class StreamTestSampler(Sampler):
    """This rank's part of the videos (all, or `indices`), worker ranges of whole batches interleaved: over the
    ranks, every video once."""

    def __init__(self, size: int, rank: int, world_size: int, batch_size: int, workers: int,
                 indices: Optional[Sequence[int]] = None):
        videos = sorted(range(size) if indices is None else indices)
        start = sum(split_evenly(len(videos), world_size)[:rank])
        mine = videos[start:start + split_evenly(len(videos), world_size)[rank]]
        batches = [mine[first:first + batch_size] for first in range(0, len(mine), batch_size)]
        counts = split_evenly(len(batches), workers)
        # The rank's last batch, the one that may be short, must come last for a DataLoader cutting the flat order
        # into batches again: its range goes to the worker whose turn is last, laid out after the others.
        last = (len(batches) % workers - 1) % workers
        layout = [worker for worker in range(workers) if worker != last] + [last]
        first = dict(zip(layout, np.cumsum([0] + [counts[worker] for worker in layout]).tolist()))
        self.indices = [index for worker, number in round_robin(counts) for index in batches[first[worker] + number]]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
