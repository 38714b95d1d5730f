"""Tasks by name: TASK.NAME chooses the class `build_task` builds.

A task module declares its class with `@register_task("name", settings=NodeSpec("NODE", ...))`: the node joins
every config (`get_cfg()`), as a backbone's does, and `from_config(cfg)` builds the task. The package's tasks
are `single_label` and `multi_label`; another is a module named in VIDEONL_PLUGINS (`config.PLUGINS_ENV`) and a
YAML file that sets TASK.NAME to its name.
"""

from typing import Callable, Optional

from videonl.class_registry import ClassRegistry
from videonl.config import NodeSpec
from videonl.tasks.base import Task

TASKS = ClassRegistry("task", "TASK.NAME", "from_config(cfg)")


def register_task(name: str, settings: Optional[NodeSpec] = None) -> Callable[[type], type]:
    """Class decorator: make a `Task` subclass available as `TASK.NAME name`, its `settings` node in the config."""
    register = TASKS.register(name, settings)

    def checked(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"task {getattr(cls, '__name__', cls)} must subclass videonl.tasks.Task")
        return register(cls)

    return checked


def build_task(cfg) -> Task:
    """The task TASK.NAME names, built from `cfg`; an unknown name fails listing the registered ones."""
    return TASKS.entry(cfg.TASK.NAME).cls.from_config(cfg)


def task_name(task: Task) -> str:
    """The name `task`'s class is registered under."""
    return TASKS.name_of(task)
