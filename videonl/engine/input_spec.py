"""The input a set of weights was trained on: pixel normalisation and channel order.

Weights only compute what they were trained to compute on the input they were trained on, so every checkpoint
of ours records that input (`InputSpec.to_record`), and testing, prediction, export, analysis and fine-tuning
adopt it into the config's DATA.MEAN / DATA.STD / DATA.CHANNEL_ORDER (`adopt_input`), unless the user set those
keys. The values of the other releases' models are their training code's own:

- torchvision's ImageNet ResNets: [0, 1] RGB, ImageNet mean and std (our defaults);
- PyTorchVideo's model zoo: [0, 1] RGB, mean 0.45 and std 0.225 per channel (the defaults of its
  `transforms_factory.create_video_transform`);
- the Caffe2 non-local release: [0, 255] values, MODEL.MEAN 114.75 and MODEL.STD 57.375 for every channel
  (`lib/core/config.py`), in RGB: its decoder converts frames to AV_PIX_FMT_RGB24 and MODEL.USE_BGR (False by
  default, set by none of its configs) would reverse them.
"""

import dataclasses
import logging
import math
from typing import Optional, Tuple

from videonl.config import explicit_keys, value_at, with_values
from videonl.data.transforms import CHANNEL_ORDERS

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Frames with values in [0, value_range], their channels in `channel_order`, are fed to the model as
    (x - mean) / std per channel (mean and std listed in that channel order)."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    value_range: float = 1.0
    channel_order: str = "RGB"

    def __post_init__(self):
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel order must be one of {', '.join(CHANNEL_ORDERS)}, got '{self.channel_order}'")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def from_cfg(cls, cfg) -> "InputSpec":
        """The input a config feeds its model (DATA.MEAN and DATA.STD are on [0, 1] values)."""
        return cls(cfg.DATA.MEAN, cfg.DATA.STD, 1.0, cfg.DATA.CHANNEL_ORDER)

    @classmethod
    def from_record(cls, record: dict) -> "InputSpec":
        return cls(record["mean"], record["std"], record["value_range"], record["channel_order"])

    def to_record(self) -> dict:
        """Plain data, as a weights-only checkpoint holds it."""
        return {"mean": list(self.mean), "std": list(self.std), "value_range": self.value_range,
                "channel_order": self.channel_order}

    def __str__(self) -> str:
        return (f"{self.channel_order} values in [0, {self.value_range:g}], mean {_listed(self.mean)}, "
                f"std {_listed(self.std)}")

    def config_values(self) -> dict:
        """The DATA keys that feed a model this input: mean and std rescaled to our [0, 1] values."""
        return {"DATA.MEAN": [m / self.value_range for m in self.mean],
                "DATA.STD": [s / self.value_range for s in self.std],
                "DATA.CHANNEL_ORDER": self.channel_order}


def _listed(values) -> str:
    return "/".join(f"{value:g}" for value in values)


IMAGENET_INPUT = InputSpec((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PYTORCHVIDEO_INPUT = InputSpec((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
CAFFE2_INPUT = InputSpec((114.75, 114.75, 114.75), (57.375, 57.375, 57.375), 255.0, "RGB")


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a, b))


def adopt_input(cfg, spec: Optional[InputSpec], source: str):
    """`cfg` with the input the weights of `source` expect, in every key the user did not set.

    A key a config file or an override set (`config.explicit_keys`) wins, with a logged warning naming both
    values; the values adopted are logged too. Returns a frozen copy; `cfg` itself is not changed.
    """
    if spec is None:
        return cfg
    chosen, adopted = explicit_keys(cfg), []
    for key, value in spec.config_values().items():
        current = value_at(cfg, key)
        if _same(current, value):
            continue
        if key in chosen:
            logger.warning("the config sets %s %s, the weights of %s were trained on %s: using the config's",
                           key, current, source, value)
        else:
            adopted += [key, value]
            logger.info("%s %s: the input the weights of %s were trained on", key, value, source)
    return with_values(cfg, adopted)

