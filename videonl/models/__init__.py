"""Video backbones, context blocks and their weights."""

from videonl.models.backbones import register_backbone
from videonl.models.build import build_model
from videonl.models.interface import VideoModel
from videonl.models.registry import register_context_block

__all__ = ["VideoModel", "build_model", "register_backbone", "register_context_block"]
