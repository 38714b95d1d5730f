"""Backbones by name: MODEL.BACKBONE chooses the class that `build_model` builds.

A backbone module declares its class with `@register_backbone("name", settings=NodeSpec("NODE", ...))`: the
node joins every config (`get_cfg()`), as a context block's does, and the classmethod `from_config(cfg)` builds
the whole model (stages and head) from the config. The class implements the model interface
(`interface.VideoModel`), which is all the engine and the commands use of it. The package's own backbone is
`resnet3d`; another one is a module anywhere on the path, named in VIDEONL_PLUGINS (`config.PLUGINS_ENV`),
and a YAML file that sets MODEL.BACKBONE to its name.
"""

from typing import Callable, Optional

from videonl.config import NodeSpec
from videonl.class_registry import ClassRegistry

BACKBONES = ClassRegistry("backbone", "MODEL.BACKBONE", "from_config(cfg)")


def register_backbone(name: str, settings: Optional[NodeSpec] = None) -> Callable[[type], type]:
    """Class decorator: make a backbone available as `MODEL.BACKBONE name`, its `settings` node in the config."""
    return BACKBONES.register(name, settings)
