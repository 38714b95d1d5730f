"""The orders that read a split as streams (data/stream_samplers.py): every video once per epoch over ranks x
workers, each worker a contiguous range read in order, a within-shard shuffle of bounded reach, resuming by a skip
count."""

import itertools

import numpy as np
import pytest

from videonl.data.stream_samplers import StreamTestSampler, StreamTrainSampler, sample_seed, shuffled_within

SHARD_SIZES = [5, 3, 7, 1, 4]  # 20 videos in 5 shards of uneven sizes: nothing divides
BATCH, RANKS, WORKERS = 3, 2, 2


def train_sampler(rank, epoch=0, start_batch=0, workers=WORKERS, buffer=3, world_size=RANKS):
    sampler = StreamTrainSampler(SHARD_SIZES, rank, world_size, BATCH, seed=7, workers=workers, shuffle_buffer=buffer)
    sampler.set_epoch(epoch, start_batch)
    return sampler


def by_worker(keys, batch_size, workers):
    """The keys each DataLoader worker is asked for: batch i of the flat order goes to worker i mod workers."""
    batches = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
    return [[key for batch in batches[worker::workers] for key in batch] for worker in range(workers)]


def test_a_training_epoch_takes_every_video_at_most_once_over_ranks_and_workers_and_leaves_out_less_than_a_batch():
    for epoch in range(3):
        keys = [key for rank in range(RANKS) for key in train_sampler(rank, epoch)]
        indices = [index for index, _ in keys]
        assert len(indices) == len(set(indices)) == 20 // (BATCH * RANKS) * BATCH * RANKS == 18
        assert set(indices) <= set(range(20))
        assert len({seed for _, seed in keys}) == len(keys)  # each clip its own augmentation
    orders = [train_sampler(0, epoch).epoch_order() for epoch in range(3)]
    assert all(sorted(order) == list(range(20)) for order in orders) and orders[0] != orders[1] != orders[2]
    assert train_sampler(0, 1).epoch_order() == orders[1]


def test_each_worker_reads_one_contiguous_range_of_the_epochs_order():
    sampler = train_sampler(0)
    places = {index: place for place, index in enumerate(sampler.epoch_order())}
    taken = []
    for rank in range(RANKS):
        for worker_keys in by_worker(list(train_sampler(rank)), BATCH, WORKERS):
            worker_places = [places[index] for index, _ in worker_keys]
            assert worker_places == list(range(worker_places[0], worker_places[0] + len(worker_places)))
            assert [seed for _, seed in worker_keys] == [sample_seed(7, 0, place) for place in worker_places]
            taken.append(worker_places)
    assert sorted(place for worker in taken for place in worker) == list(range(18))  # the order's first 18


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_resumed_epoch_asks_for_exactly_what_the_uninterrupted_one_asks_for_from_that_batch_on(workers):
    for rank in range(RANKS):
        whole = list(train_sampler(rank, epoch=4, workers=workers))
        for start in range(whole.__len__() // BATCH):
            resumed = train_sampler(rank, epoch=4, start_batch=start, workers=workers)
            assert list(resumed) == whole[start * BATCH:] and len(resumed) == len(whole) - start * BATCH


def test_the_shuffle_within_a_shard_moves_a_video_at_most_the_buffer_ahead_and_a_buffer_of_one_keeps_the_order():
    rng = np.random.default_rng(0)
    for buffer in (1, 2, 5):
        out = shuffled_within(range(30), buffer, rng)
        assert sorted(out) == list(range(30))
        assert all(item < place + buffer for place, item in enumerate(out))
        assert (out == list(range(30))) == (buffer == 1)
    order = train_sampler(0, buffer=4).epoch_order()
    starts = list(itertools.accumulate([0] + SHARD_SIZES))
    shard_of = {video: shard for shard in range(len(SHARD_SIZES)) for video in range(starts[shard], starts[shard + 1])}
    runs = [shard for shard, _ in itertools.groupby(shard_of[video] for video in order)]
    assert sorted(runs) == list(range(len(SHARD_SIZES)))  # a shard's videos follow one another


def test_too_few_videos_for_one_global_batch_is_an_error():
    with pytest.raises(ValueError, match="fewer than one global batch of 24"):
        StreamTrainSampler(SHARD_SIZES, 0, 4, 6, seed=0, workers=1, shuffle_buffer=1)


@pytest.mark.parametrize("size, indices", [(11, None), (7, None), (5, None), (20, [0, 2, 3, 4, 9, 10, 11, 12, 17, 19])])
@pytest.mark.parametrize("world_size, workers, batch_size", [(2, 2, 1), (2, 2, 2), (3, 2, 3), (1, 3, 2),
                                                                 (1, 2, 2), (1, 3, 3)])
def test_testing_gives_every_video_once_over_ranks_and_workers_each_worker_a_contiguous_range(
        size, indices, world_size, workers, batch_size):
    wanted = list(range(size)) if indices is None else indices
    parts = [list(StreamTestSampler(size, rank, world_size, batch_size, workers, indices))
             for rank in range(world_size)]
    assert sorted(index for part in parts for index in part) == wanted
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for part in parts:
        batches = [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
        assert all(len(batch) == batch_size for batch in batches[:-1])  # the DataLoader cuts them as planned
        for worker_keys in by_worker(part, batch_size, workers):
            places = [wanted.index(index) for index in worker_keys]
            assert places == list(range(places[0], places[0] + len(places))) if places else True
