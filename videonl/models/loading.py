"""Loading a state dict into a model and naming every key that did not land."""

import logging
from typing import List, Mapping, NamedTuple

import torch
from torch import nn

from videonl.models.conversions.common import CheckpointError

logger = logging.getLogger(__name__)
LISTED_KEYS = 5  # keys named per kind of problem in an error; a checkpoint of another model has hundreds


class LoadReport(NamedTuple):
    """Keys that did not simply land: the model's without a value, the state's without a place, and the
    ones skipped for a shape mismatch."""

    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]


def load_state_dict_checked(
    model: nn.Module, state: Mapping[str, torch.Tensor], skip_mismatched: bool = False
) -> LoadReport:
    """Load `state` into `model` and name every key that did not land.

    Missing and unexpected keys are normal in some loads (an inflated ImageNet model has no classifier), so
    they are logged and returned. A shape mismatch means another architecture and fails in one line naming the
    first key with both shapes and counting the others (each logged at INFO level), unless `skip_mismatched` (e.g. a
    classifier for another number of classes).
    """
    model_shapes = {key: value.shape for key, value in model.state_dict().items()}
    mismatched = {
        key: (tuple(value.shape), tuple(model_shapes[key]))
        for key, value in state.items()
        if key in model_shapes and value.shape != model_shapes[key]
    }
    if mismatched and not skip_mismatched:
        for key, (source, target) in mismatched.items():
            logger.info("shape mismatch: %s: checkpoint %s vs model %s", key, source, target)
        (key, (source, target)), more = next(iter(mismatched.items())), len(mismatched) - 1
        raise CheckpointError(f"weights do not fit the model (shape mismatch): {key}: checkpoint {source} vs model "
                              f"{target}" + (f", and {more} more keys of other shapes (each logged at INFO level)" if more else ""))
    result = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    report = LoadReport(
        missing=[key for key in result.missing_keys if key not in mismatched],
        unexpected=list(result.unexpected_keys),
        mismatched=list(mismatched),
    )
    _log_report(report)
    return report


def load_complete_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                             model_name: str = "the model") -> None:
    """Load `state` as every weight of `model`: nothing may be missing or left over, so weights of another
    model or class count fail, naming the keys, `source` (where the state came from) and `model_name`.

    The load's own report is the judge, not key sets: a frozen BN, say, takes and drops `num_batches_tracked`.
    """
    report = load_state_dict_checked(model, state)
    problems = [f"{what}: {_listed(keys)}" for what, keys in (
        ("model weights the checkpoint does not provide", report.missing),
        ("weights the model has no place for", report.unexpected),
    ) if keys]
    if problems:
        raise CheckpointError(f"{source} does not fit {model_name}:\n  " + "\n  ".join(problems))


def _listed(keys: List[str]) -> str:
    more = len(keys) - LISTED_KEYS
    return ", ".join(keys[:LISTED_KEYS]) + (f" and {more} more" if more > 0 else "")


def _log_report(report: LoadReport) -> None:
    problems = (
        ("model keys the weights do not provide", report.missing),
        ("weights the model has no place for", report.unexpected),
        ("weights skipped for a shape mismatch", report.mismatched),
    )
    for what, keys in problems:
        if keys:
            logger.warning("%d %s: %s", len(keys), what, ", ".join(keys))
