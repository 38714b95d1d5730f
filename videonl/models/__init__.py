"""Video backbones, context blocks and their weights."""

from .build import build_model, stage_blocks
from .registry import register_context_block

__all__ = ["build_model", "stage_blocks", "register_context_block"]
