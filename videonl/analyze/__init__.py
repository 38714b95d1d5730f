"""Attention analysis of trained models: GCNet's statistics (`statistics`) and attention-map pictures (`maps`).

    videonl analyze attention | attention-maps --help
"""

from videonl.analyze.maps import Query, render_attention_maps
from videonl.analyze.statistics import attention_statistics, format_table, write_statistics
from videonl.engine.runtime import load_model

__all__ = ["Query", "attention_statistics", "format_table", "load_model", "render_attention_maps", "write_statistics"]
