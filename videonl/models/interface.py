"""The model interface: all that the engine and the commands use of a model, whichever backbone built it.

`build_model` returns an `nn.Module` that implements `VideoModel` and checks that it does (`check_model`). The
users: training and precise BN call the model (`forward`); testing, prediction and export read `test_logits`
(export through `ModelForTest`); the config checks run both on the meta device; `videonl info` hooks
`stage_modules` and runs `features`, attention analysis runs `features`; fine-tuning for another class count
re-initialises the parameters under `classifier_name`. Context blocks a backbone places are found by their
registered class (`registry.is_context_block`), not through this interface.

The weights are the model's `state_dict`: its keys are the checkpoint format, so a backbone keeps its
parameter names once checkpoints of it exist. The foreign checkpoint formats (`conversions/`) map onto the
`resnet3d` backbone's names only.
"""

from typing import List, Protocol, Tuple, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class VideoModel(Protocol):
    """A classifier of video clips.

    Its input, in every method: float clips `[B, C, T, H, W]`, C = DATA.INPUT_CHANNELS, in the channel order
    and normalisation of the weights' input spec (`input_spec.InputSpec`: DATA.MEAN, DATA.STD,
    DATA.CHANNEL_ORDER), T = DATA.NUM_FRAMES, and H = W the crop of the run (DATA.TRAIN_CROP_SIZE,
    DATA.TEST_CROP_SIZE); the config checks run the model on these sizes before a run starts.
    """

    classifier_name: str
    """Dotted name of the module that maps features to class scores ("head.fc"): its parameters are the state
    keys `<classifier_name>.*`, left fresh when MODEL.INIT's weights were trained for another class count."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """`[B, classes]` logits of the whole clip, in train and eval mode alike: what the loss takes."""

    def test_logits(self, clips: torch.Tensor) -> torch.Tensor:
        """`[B, windows, classes]` logits of each test view's windows, read by testing, prediction and export.

        The resnet3d head classifies windows that slide over its last map (the fully-convolutional test,
        `head.Head.test_logits`); a model without windows returns its logits as one window
        (`forward(clips)[:, None]` in eval mode). The model knows nothing of softmax or sigmoid: the task
        (`videonl.tasks.Task.view_output`) turns the windows into the view's class probabilities.
        """

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """The last stage's map `[B, C', T', H', W']`, before the head: the clips run through `stage_modules`
        in order, and nothing else runs (attention analysis needs no classifier)."""

    def stage_modules(self) -> List[Tuple[str, nn.Module]]:
        """`(name, module)` of each stage in the order a clip flows through them, the head excluded; each name
        is the module's attribute name, so its parameters' state keys start with it."""


class ModelForTest(nn.Module):
    """A model whose forward is its `test_logits`: the test's computation, for tracing (FLOP counts)."""

    def __init__(self, model: VideoModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.test_logits(x)


def missing_members(model: object) -> List[str]:
    """The members `VideoModel` declares (attributes and methods) that `model` lacks."""
    methods = [name for name, value in vars(VideoModel).items() if callable(value) and not name.startswith("_")]
    return [name for name in [*VideoModel.__annotations__, *methods] if not hasattr(model, name)]


def check_model(model: nn.Module, built_by: str) -> None:
    """TypeError naming what `model` (built by `built_by`, e.g. "MODEL.BACKBONE 'toynet'") lacks of the
    interface, or a classifier_name that names none of its modules."""
    missing = missing_members(model)
    if missing:
        raise TypeError(f"{built_by} built a {type(model).__name__}, which lacks {', '.join(missing)} of the model "
                        "interface (videonl.models.interface.VideoModel)")
    if not classifier_keys(model):
        raise TypeError(f"{built_by}: classifier_name '{model.classifier_name}' names no module with parameters "
                        f"in {type(model).__name__}")


def classifier_keys(model: nn.Module) -> Tuple[str, ...]:
    """The state keys of the model's classifier (`VideoModel.classifier_name`)."""
    prefix = model.classifier_name + "."
    return tuple(key for key in model.state_dict() if key.startswith(prefix))
