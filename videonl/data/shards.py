"""WebDataset shards as a source of videos: a split packed into tar files, read by path or URL, in stream order.

A split packed by `videonl prep shards` sits in one location (a folder or a URL prefix):
  {split}-000000.tar ...  the videos as prepared, not re-encoded, in the index's order; video number i is the
                          two members `{key}.{ext}` (its encoded bytes, `ext` its file's extension) and
                          `{key}.json` ({"id": its path in the list, "label": the list's label field, as text}),
                          with key = i in 8 digits
  {split}.shards.json     the index: each shard's name, videos and bytes, and each video's id and label field
  classes.json            the data's class names, when its folder had them (`datasets.data_class_names`)
Videos are numbered in the index's order; the dataset's records are the index's, so everything that names a
video by number (samplers, scores, reports) works as with a list file.

Where: `DATA.SHARDS` is a folder, a `file://`, `http(s)://` or `gs://` URL prefix, to which `/{name}` is added,
or any URL webdataset opens with `{name}` where a file's name goes, e.g. for S3 through the AWS command line
`pipe:aws s3 cp s3://bucket/kinetics400/{name} -`. Files and URLs are opened by webdataset's `gopen` (http(s)
through `curl`, `pipe:` through the shell) and tar streams read by its tar iterators.

A process reads members through one `ShardReader`: a cursor over one shard's stream, which serves the videos asked
for when they lie ahead of it (keeping, in memory, the ones read on the way that are not yet asked for) and
opens the shard again only for a video it has passed. Read in the order of `data.stream_samplers`, each loader worker
reads its part of each shard once.
"""

import json
import logging
import os
import shutil
import tarfile
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate
from typing import Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

import torch

from videonl.data.decode import DecodeError

logger = logging.getLogger(__name__)
INDEX_NAME = "{split}.shards.json"
CLASSES_NAME = "classes.json"  # the data's class names, copied beside the shards
SHARD_NAME = "{split}-{number:06d}.tar"
FORMAT = "videonl-shards-1"


class ShardError(RuntimeError):
    """A shard or index that cannot be used at all (not found, not a tar, another packing's): the run stops."""


def member_key(position: int) -> str:
    return f"{position:08d}"


def video_suffix(video_id: str) -> str:
    """The member suffix of a video: its file's extension, lower case (what a WebDataset reader keys it by)."""
    return os.path.splitext(video_id)[1].lstrip(".").lower() or "video"


def location_url(location: str, name: str) -> str:
    """The URL of file `name` at `location`: `{name}` replaced, else `/name` added (a folder made absolute)."""
    if "{name}" in location:
        return location.replace("{name}", name)
    if not urlparse(location).scheme:
        location = os.path.abspath(location)
    return f"{location.rstrip('/')}/{name}"


def index_url(location: str, split: str) -> str:
    return location_url(location, INDEX_NAME.format(split=split))


def open_url(url: str):
    """A binary stream of `url` through webdataset's `gopen`; http(s) needs the `curl` command. A scheme gopen has
    no handler for (s3:) is an error saying how to read it through a command (`pipe:`)."""
    import webdataset
    from webdataset.gopen import gopen_schemes

    scheme = urlparse(url).scheme
    if scheme not in ("", "file", *gopen_schemes):
        raise ShardError(f"{url}: webdataset opens no {scheme}: URLs; give DATA.SHARDS a pipe: URL of a command "
                         f"that writes the file, {{name}} where its name goes, e.g. 'pipe:aws s3 cp "
                         f"s3://bucket/kinetics400/{{name}} -'")
    if scheme in ("http", "https") and shutil.which("curl") is None:
        raise ShardError(f"{url}: webdataset reads http(s) URLs with the curl command, which is not installed here")
    return webdataset.gopen(url, "rb")


def read_if_there(url: str) -> Optional[bytes]:
    """The bytes at `url`; None when nothing can be read there (no such file, a download that fails)."""
    try:
        with open_url(url) as stream:
            return stream.read()
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Shard:
    name: str
    videos: int
    bytes: int


@dataclass(frozen=True)
class ShardIndex:
    """A split's shards and videos, as `{split}.shards.json` holds them; `location` is where they were read."""

    split: str
    shards: Tuple[Shard, ...]
    videos: Tuple[Tuple[str, str], ...]  # (id, label field) of every video, in order
    location: str = ""

    @classmethod
    def read(cls, location: str, split: str) -> "ShardIndex":
        url = index_url(location, split)
        try:
            with open_url(url) as stream:
                data = json.loads(stream.read().decode("utf-8"))
        except (OSError, ValueError) as err:
            raise ShardError(f"cannot read the shard index {url} (DATA.SHARDS): {err}") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ShardError(f"{url} is not a shard index of this format ({FORMAT})")
        index = cls(data["split"], tuple(Shard(**shard) for shard in data["shards"]),
                    tuple((video_id, label) for video_id, label in data["videos"]), location)
        if sum(shard.videos for shard in index.shards) != len(index.videos):
            raise ShardError(f"{url}: its shards hold {sum(s.videos for s in index.shards)} videos, its list "
                             f"{len(index.videos)}")
        return index

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "split": self.split,
                           "shards": [vars(shard) for shard in self.shards],
                           "videos": [list(video) for video in self.videos]}, ensure_ascii=False) + "\n"

    @property
    def url(self) -> str:
        return index_url(self.location, self.split)

    @property
    def starts(self) -> List[int]:
        """The number of each shard's first video, and the total last."""
        return [0, *accumulate(shard.videos for shard in self.shards)]

    def shard_of(self, position: int) -> int:
        return bisect_right(self.starts, position) - 1

    def shard_url(self, shard: int) -> str:
        return location_url(self.location, self.shards[shard].name)


def _shard_samples(stream) -> Iterator[Dict]:
    """The samples of one tar stream ({"__key__", suffix: bytes, ...}), grouped by webdataset."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    return group_by_keys(tar_file_expander([{"url": "", "stream": stream}]))


class ShardReader:
    """The encoded bytes of a split's videos by number, read from its shards as a stream (see the module).

    `lookahead` bounds the videos held in memory: read on the way to another but not asked for yet (the
    within-shard shuffle of `data.stream_samplers` asks for each within `lookahead` of where the stream is), and the
    last ones served (a failed training video's replacement is drawn near it).
    """

    def __init__(self, index: ShardIndex, lookahead: int):
        self.index, self.lookahead = index, max(1, lookahead)
        self.opened: List[int] = []  # shards opened, in order (each pass over a shard opens it once)
        self._reset()

    def _reset(self) -> None:
        self._shard, self._stream, self._samples, self._next = None, None, None, 0
        self._ahead: "OrderedDict[int, Dict]" = OrderedDict()  # read, not asked for yet
        self._served: "OrderedDict[int, Dict]" = OrderedDict()  # asked for already
        self._broken: Dict[int, Tuple[int, str]] = {}  # shard -> (first video lost, why): the stream broke there

    def __getstate__(self) -> dict:
        """A copy for another process (a spawned loader worker) starts with nothing open."""
        return {"index": self.index, "lookahead": self.lookahead, "opened": []}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def name(self, position: int) -> str:
        """What a failure names: the video's id and its shard."""
        return f"{self.index.videos[position][0]} in {self.index.shard_url(self.index.shard_of(position))}"

    def member(self, position: int) -> bytes:
        """The encoded video number `position`; DecodeError (named by `name`) when its shard does not hold it or
        breaks off before it."""
        sample = self._sample(position)
        video_id = self.index.videos[position][0]
        data = sample.get(video_suffix(video_id))
        if data is None:
            raise DecodeError(self.name(position), f"no .{video_suffix(video_id)} member under key "
                                                   f"{member_key(position)} in the shard")
        return data

    def nearby(self, position: int) -> int:
        """A video to train on in place of `position` (failed): drawn from the torch generator among those of its
        shard within `lookahead` of it, which are in memory or close ahead; from the whole split in a shard of one."""
        shard = self.index.shard_of(position)
        first, end = self.index.starts[shard], self.index.starts[shard + 1]
        low, high = max(first, position - self.lookahead), min(end, position + self.lookahead + 1)
        if high - low < 2:
            return int(torch.randint(0, len(self.index.videos), ()))
        choice = low + int(torch.randint(0, high - low - 1, ()))
        return choice + (choice >= position)

    def _sample(self, position: int) -> Dict:
        for held in (self._ahead, self._served):
            if position in held:
                sample = held.pop(position)
                self._keep(self._served, position, sample)
                return sample
        shard = self.index.shard_of(position)
        if shard in self._broken and position >= self._broken[shard][0]:
            raise DecodeError(self.name(position), self._broken[shard][1])
        if shard != self._shard or position < self._next:
            self._open(shard)
        while True:
            sample = self._read_next(shard, position)
            if self._next - 1 == position:
                self._keep(self._served, position, sample)
                return sample
            self._keep(self._ahead, self._next - 1, sample)

    def _keep(self, held: "OrderedDict[int, Dict]", position: int, sample: Dict) -> None:
        held[position] = sample
        while len(held) > self.lookahead:  # only when asked out of the streams' order: costs a re-read, not a video
            held.popitem(last=False)

    def _open(self, shard: int) -> None:
        self.close()
        url = self.index.shard_url(shard)
        try:
            self._stream = open_url(url)
        except (OSError, ValueError) as err:
            raise ShardError(f"cannot open shard {url}: {err}") from err
        self._shard, self._samples, self._next = shard, _shard_samples(self._stream), self.index.starts[shard]
        self._ahead.clear()
        self.opened.append(shard)

    def _read_next(self, shard: int, position: int) -> Dict:
        """The shard's next sample, checked to be video `self._next`."""
        url, first, end = self.index.shard_url(shard), self.index.starts[shard], self.index.starts[shard + 1]
        try:
            sample = next(self._samples, None)
        except (OSError, tarfile.TarError, ValueError) as err:
            if self._next == first:
                raise ShardError(f"cannot read shard {url}: {err}") from err
            sample, reason = None, f"the shard breaks off after video {self._next - 1}: {err}"
        else:
            reason = f"the shard ends after {self._next - first} of its {end - first} videos"
        if sample is None:
            self._broken[shard] = (self._next, reason)
            self.close()
            raise DecodeError(self.name(position), reason)
        expected = member_key(self._next)
        if sample["__key__"] != expected:
            raise ShardError(f"{url} holds {sample['__key__']} where the index {self.index.url} has video {expected}: "
                             f"shards and index of different packings")
        self._next += 1
        return sample

    def close(self) -> None:
        """Close the shard being read (a `curl` or `pipe:` process ends with it)."""
        if self._stream is not None:
            self._stream.close()
        self._shard, self._stream, self._samples = None, None, None
