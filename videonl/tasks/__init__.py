"""Tasks: what a video's label is, and the targets, loss, view combination, metrics, reports and printed
classes that follow from it (`base.Task`). Importing this package registers the package's tasks."""

from videonl.tasks.base import Task
from videonl.tasks.registry import build_task, register_task, task_name
from videonl.tasks import multi_label, single_label  # noqa: F401  (registers the package's tasks)

__all__ = ["Task", "build_task", "register_task", "task_name"]
