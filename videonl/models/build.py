"""build_model(cfg): the model of the backbone MODEL.BACKBONE names, with the context blocks and head the config
describes, freshly initialised (MODEL.INIT's weights are the engine's: `videonl.engine.initialization`)."""

from torch import nn

from videonl.config import ConfigError
from videonl.models import context, resnet3d  # noqa: F401  (register the package's context blocks and backbone)
from videonl.models.backbones import BACKBONES
from videonl.models.interface import VideoModel, check_model
from videonl.models.registry import context_block_class


def build_model(cfg) -> VideoModel:
    """The model the config describes, with fresh weights; one that lacks part of the model interface, or
    places none of the context blocks the config asks for, fails naming MODEL.BACKBONE."""
    built_by = f"MODEL.BACKBONE '{cfg.MODEL.BACKBONE}'"
    model = BACKBONES.entry(cfg.MODEL.BACKBONE).cls.from_config(cfg)
    check_model(model, built_by)
    _check_context_placed(model, cfg, built_by)
    return model


def _check_context_placed(model: nn.Module, cfg, built_by: str) -> None:
    if cfg.CONTEXT.BLOCK and not any(isinstance(m, context_block_class(cfg.CONTEXT.BLOCK)) for m in model.modules()):
        raise ConfigError(f"CONTEXT.BLOCK '{cfg.CONTEXT.BLOCK}' is set, but {built_by} placed no such block: it does "
                         "not place context blocks (set CONTEXT.BLOCK '' and CONTEXT.RES2..RES5 [])")
