"""Classes chosen by name from the config, each with an optional config node of its own.

The context blocks (`models.registry`, chosen by CONTEXT.BLOCK), the backbones (`models.backbones`, chosen by
MODEL.BACKBONE) and the tasks (`tasks.registry`, chosen by TASK.NAME) register this way: a class decorator names
the class and may declare a `NodeSpec`, which then joins every config (`get_cfg()`), so that the class's
settings sit beside its code. A registered class builds itself with a `from_config` classmethod, whose
arguments each registry states.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from fvcore.common.config import CfgNode

from videonl.config import NodeSpec, add_node


@dataclass(frozen=True)
class Entry:
    cls: type
    settings: Optional[NodeSpec]


class ClassRegistry:
    """Classes of one kind by name.

    Args:
        kind: what the classes are, for messages ("context block", "backbone", "task").
        key: the config key that names one ("CONTEXT.BLOCK").
        from_config: the signature of the classmethod every class must have, for messages.
    """

    def __init__(self, kind: str, key: str, from_config: str):
        self.kind, self.key, self.from_config = kind, key, from_config
        self._entries: Dict[str, Entry] = {}

    def register(self, name: str, settings: Optional[NodeSpec] = None) -> Callable[[type], type]:
        """Class decorator: make the class available as `key name`, its `settings` node in the config."""

        def register(cls: type) -> type:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered by {self._entries[name].cls.__name__}")
            if not hasattr(cls, "from_config"):
                raise TypeError(f"{self.kind} {cls.__name__} needs a {self.from_config} classmethod")
            if settings is not None:
                add_node(settings)
            self._entries[name] = Entry(cls, settings)
            return cls

        return register

    def names(self) -> Tuple[str, ...]:
        return tuple(sorted(self._entries))

    def entry(self, name: str) -> Entry:
        """The class registered as `name`; an unknown name fails listing the known ones."""
        if name not in self._entries:
            known = ", ".join(self.names()) or "none registered"
            raise KeyError(f"{self.key} '{name}' is not a registered {self.kind} (known: {known})")
        return self._entries[name]

    def settings(self, cfg: CfgNode, name: str) -> Optional[CfgNode]:
        """The values of `name`'s own node in `cfg` (None for a class without settings)."""
        settings = self.entry(name).settings
        return settings.read(cfg) if settings is not None else None

    def holds(self, instance: object) -> bool:
        """Whether `instance` is of a registered class (a subclass is not)."""
        return any(entry.cls is type(instance) for entry in self._entries.values())

    def name_of(self, instance: object) -> str:
        """The name an instance's class is registered under (the first, for a class registered twice), or the
        class's own name when it is not registered."""
        names = [name for name, entry in sorted(self._entries.items()) if entry.cls is type(instance)]
        return names[0] if names else type(instance).__name__
