"""Video backbones, context blocks and their weights."""

from videonl.models.build import build_model, stage_blocks
from videonl.models.registry import register_context_block

__all__ = ["build_model", "stage_blocks", "register_context_block"]
