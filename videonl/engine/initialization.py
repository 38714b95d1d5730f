"""The initialisation policy: MODEL.INIT's weights into a fresh model, a classifier for other classes left fresh."""

import logging
from typing import Dict

import torch
from torch import nn

from videonl.engine.weight_sources import Weights
from videonl.models.interface import classifier_keys
from videonl.models.loading import LoadReport, load_state_dict_checked

logger = logging.getLogger(__name__)


def initialize(model: nn.Module, init: Weights) -> LoadReport:
    """Load MODEL.INIT (any source `weight_sources` opens) into `model`.

    A classifier for another number of classes (fine-tuning Kinetics -> UCF101) is left at its fresh
    initialisation and logged; any other shape mismatch fails. Missing and unused keys are logged: an
    inflated ImageNet ResNet has no classifier, and a model with blocks has weights no backbone provides.
    """
    state, unused = init.state_for(model)
    if unused:
        logger.info("MODEL.INIT %s: %d source keys not used: %s", init.source, len(unused), ", ".join(unused))
    return load_state_dict_checked(model, _without_other_classifier(model, dict(state), init.source))


def _without_other_classifier(model: nn.Module, state: Dict[str, torch.Tensor], init: str):
    target = model.state_dict()
    classifier = [key for key in classifier_keys(model) if key in state and state[key].shape != target[key].shape]
    if classifier:
        logger.info("MODEL.INIT %s: its classifier has %d classes, the model %d: %s re-initialised", init,
                    state[classifier[0]].shape[0], target[classifier[0]].shape[0], model.classifier_name)
    return {key: value for key, value in state.items() if key not in classifier}
