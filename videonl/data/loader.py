"""DataLoaders for training, validation and testing, single-process or distributed.

Batch formats, for the training loop and the evaluator:

train: {"clip": [B, C, T, S, S], "label": the task's targets, "index": long [B],
        "failures": list of "path: reason" for the videos replaced while building this batch}
    The loop adds up len(batch["failures"]) over each log window (TRAIN.LOG_PERIOD iterations) and logs it.
val / test: {"views": list of B_ok `VideoViews` (the videos that decoded, in batch order: each its distinct
             frames and the plan of its V views), "label": the task's targets, "index": long [B], "valid": bool [B],
             "error": list of B strings}
    `view_batches(batch["views"], cfg, device)` sends each video's frames to the device once,
    cuts the views there and yields them ready for the model, TEST.VIEWS_PER_FORWARD at a time (video-major);
    concatenate the task's view probabilities, view them as [B_ok, V, classes] and combine them over V as the
    task does. A row with valid False is a video that failed: scored as wrong, or left out when
    TEST.EXCLUDE_FAILED.
Targets are stacked as torch's `default_collate` stacks them: the single-label task's class indices into
long [B], the multi-label task's multi-hot vectors into float [B, classes].
Clips and frames are uint8 with DATA.NORMALIZE_ON_DEVICE (the default) and float otherwise, laid out
channels-last (physically [..., T, H, W, C], as decoded); pass every clip or group of views through
`model_input(tensor, cfg, device)`, which moves it, normalises it when needed and gives it the model's memory
format (`memory_format`: RUNTIME.CHANNELS_LAST, in which the engine also places the model).

Training uses `TrainSampler`: a seeded permutation per epoch, cut into global batches of which each rank takes
its slice, yielding (index, seed) pairs so that a clip's augmentation depends only on TRAIN.SEED, the epoch
and its place in the permutation. One process with batch 2B and two with batch B then see the same clips,
augmented the same way, and `set_epoch(loader, epoch, start_batch)` resumes mid-epoch exactly. Testing uses
`ShardSampler`, which gives rank r the videos r, r + world, ... without padding, so every video is scored
exactly once; given `indices`, only those videos are loaded (an interrupted evaluation scores the rest).
Ranks may then see different numbers of batches: evaluate with the unwrapped module
(`ddp_model.module`), since DistributedDataParallel's forward runs a collective (buffer broadcast) that would
wait for the ranks that have finished. Gather per-video results across ranks keyed by batch["index"] (e.g.
all_gather_object of (index, scores, label) lists, or all_reduce of correct / counted sums).
"""

import os
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from videonl import ranks
from videonl.data.datasets import MODES, VideoDataset, read_video_list
from videonl.data.decode import GPU_BACKENDS
from videonl.data.transforms import VideoViews, normalize
from videonl.tasks import build_task


class ShardSampler(Sampler):
    """Positions rank, rank + world_size, ... of `indices` (default: the whole dataset): a partition, no video
    repeated or dropped."""

    def __init__(self, size: int, rank: int, world_size: int, indices: Optional[Sequence[int]] = None):
        self.indices = list(range(size) if indices is None else indices)[rank::world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class TrainSampler(Sampler):
    """This rank's (index, seed) pairs of one epoch, resumable at any batch.

    Global batch b of an epoch is the permutation's slice [b*G, (b+1)*G) for G = batch_size * world_size;
    rank r takes its r-th part. The tail that does not fill a global batch is dropped.
    """

    def __init__(self, size: int, rank: int, world_size: int, batch_size: int, seed: int):
        global_batch = batch_size * world_size
        if size < global_batch:
            raise ValueError(f"the training list has {size} videos, fewer than one global batch of {global_batch} "
                             f"(DATALOADER.TRAIN_BATCH_SIZE {batch_size} x {world_size} processes)")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.batch_size, self.seed = batch_size, seed
        self.batches_per_epoch = size // global_batch
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch < self.batches_per_epoch:
            raise ValueError(f"start batch {start_batch} outside the epoch's {self.batches_per_epoch} batches")
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[tuple]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        global_batch = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch):
            first = batch * global_batch + self.rank * self.batch_size
            for position in range(first, first + self.batch_size):
                yield order[position], sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed of its own for every (run seed, epoch, position): numpy's SeedSequence hashes the triple."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


def stack_clips(clips: List[torch.Tensor]) -> torch.Tensor:
    """Clips [..., C, T, H, W] stacked in their channels-last physical order [..., T, H, W, C]: plain copies
    (into shared memory in a loader worker), where torch.stack could reorder every pixel."""
    return default_collate([clip.movedim(-4, -1) for clip in clips]).movedim(-1, -4)


def collate_train(items: List[Dict]) -> Dict:
    return {
        "clip": stack_clips([item["clip"] for item in items]),
        "label": default_collate([item["label"] for item in items]),
        "index": torch.tensor([item["index"] for item in items]),
        "failures": [failure for item in items for failure in item["failures"]],
    }


def collate_views(items: List[Dict]) -> Dict:
    return {
        "views": [item["views"] for item in items if item["views"] is not None],
        "label": default_collate([item["label"] for item in items]),
        "index": torch.tensor([item["index"] for item in items]),
        "valid": torch.tensor([item["views"] is not None for item in items]),
        "error": [item["error"] for item in items],
    }


def list_file(cfg, split: str) -> str:
    name = {"train": cfg.DATA.TRAIN_SPLIT, "val": cfg.DATA.VAL_SPLIT, "test": cfg.TEST.SPLIT}[split]
    return os.path.join(cfg.DATA.PATH_TO_DATA_DIR, f"{name}.csv")


def build_dataset(cfg, split: str) -> VideoDataset:
    if split not in MODES:
        raise ValueError(f"unknown split '{split}'; choose from {', '.join(MODES)}")
    records = read_video_list(list_file(cfg, split), cfg.DATA.LIST_SEPARATOR, cfg.DATA.PATH_PREFIX,
                              build_task(cfg).parse_label)
    return VideoDataset(records, split, cfg)


def build_loader(cfg, split: str, rank: Optional[int] = None, world_size: Optional[int] = None,
                 indices: Optional[Sequence[int]] = None) -> DataLoader:
    """The loader of `split` (train | val | test) for this process; rank and world size default to
    torch.distributed's when it is initialised, else to a single process. `indices` (val and test only)
    restricts it to those positions of the list, shared out over the ranks."""
    if rank is None or world_size is None:
        rank, world_size = ranks.rank(), ranks.world_size()
    dataset = build_dataset(cfg, split)
    training = split == "train"
    decodes_on_gpu = cfg.DATA.DECODER in GPU_BACKENDS and torch.cuda.is_available()
    if training and indices is not None:
        raise ValueError("indices selects videos to evaluate; the training loader always uses the whole list")
    if training:
        sampler = TrainSampler(len(dataset), rank, world_size, cfg.DATALOADER.TRAIN_BATCH_SIZE, cfg.TRAIN.SEED)
    else:
        sampler = ShardSampler(len(dataset), rank, world_size, indices)
    return DataLoader(
        dataset,
        batch_size=cfg.DATALOADER.TRAIN_BATCH_SIZE if training else cfg.DATALOADER.TEST_BATCH_SIZE,
        sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        pin_memory=cfg.DATALOADER.PIN_MEMORY and torch.cuda.is_available() and not decodes_on_gpu,
        collate_fn=collate_train if training else collate_views,
        generator=torch.Generator(),  # workers' base seeds drawn from it, not from the global RNG a resume restores
        persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0 and training,
        # CUDA cannot start again in a forked process: workers that decode on the GPU are spawned
        multiprocessing_context="spawn" if decodes_on_gpu and cfg.DATALOADER.NUM_WORKERS > 0 else None,
    )


def memory_format(cfg) -> torch.memory_format:
    """The layout of the model's weights and inputs: channels-last-3d when RUNTIME.CHANNELS_LAST. The data layer
    lays its inputs out in it, the engine its model (`engine.runtime.place_model`)."""
    return torch.channels_last_3d if cfg.RUNTIME.CHANNELS_LAST else torch.contiguous_format


def model_input(clips: torch.Tensor, cfg, device: torch.device) -> torch.Tensor:
    """A loader tensor on `device`, normalised there when the loader left it uint8 (DATA.NORMALIZE_ON_DEVICE;
    DATA.MEAN, DATA.STD, DATA.CHANNEL_ORDER), in the model's `memory_format`: channels-last-3d is the loader's
    own layout (no copy); contiguous is reordered on the device."""
    clips = clips.to(device, non_blocking=True)
    if clips.dtype == torch.uint8:
        clips = normalize(clips, cfg.DATA.MEAN, cfg.DATA.STD, cfg.DATA.CHANNEL_ORDER)
    return clips.contiguous(memory_format=memory_format(cfg))


def view_batches(videos: Sequence[VideoViews], cfg, device: torch.device) -> Iterator[torch.Tensor]:
    """The views of loader videos as model inputs of at most TEST.VIEWS_PER_FORWARD views each, in order (video
    by video), so that 30 views of a long clip need not fit in memory at once. Each video's distinct frames go
    to `device` once and its views are cut there."""
    size = cfg.TEST.VIEWS_PER_FORWARD
    pieces, filled = [], 0
    for video in videos:
        video = video.to(device, non_blocking=True)
        first = 0
        while first < len(video):  # a chunk may hold the end of one video and the start of the next
            count = min(size - filled, len(video) - first)
            pieces.append(video.cut(first, count))
            first, filled = first + count, filled + count
            if filled == size:
                yield model_input(torch.cat(pieces), cfg, device)
                pieces, filled = [], 0
    if pieces:
        yield model_input(torch.cat(pieces), cfg, device)


def set_epoch(loader: DataLoader, epoch: int, start_batch: int = 0) -> None:
    """Point a training loader at `epoch`, starting at its batch `start_batch` (a resumed run)."""
    loader.sampler.set_epoch(epoch, start_batch)
