"""The task a set of weights was trained for, as testing, prediction, export and analysis adopt it.

A multi-label model's outputs are per-class sigmoid logits: read as a single-label model's (a softmax), they
rank and print nonsense without an error. So our checkpoints' task (TASK.NAME and the task's own node, in the
config each checkpoint holds) is adopted by the commands that run trained weights, unless the user's config
or overrides set TASK.NAME; a task key the user set keeps the user's value. Training never adopts it: a model
fine-tuned from a Kinetics checkpoint on Charades trains for its own task (MODEL.INIT is another task's).
"""

import logging
from typing import Any, Dict, Optional

import yaml

from videonl.config import explicit_keys, value_at, with_values
from videonl.tasks.registry import TASKS

logger = logging.getLogger(__name__)
TASK_KEY = "TASK.NAME"


def recorded_task(cfg_yaml: str) -> Dict[str, Any]:
    """{dotted key: value} of the task a checkpoint's config (YAML) names: TASK.NAME and the keys of the task's
    own node. A config from before tasks existed names none: single-label, the only task there was."""
    recorded = yaml.safe_load(cfg_yaml) or {}
    name = (recorded.get("TASK") or {}).get("NAME", "single_label")
    values = {TASK_KEY: name}
    if name in TASKS.names() and TASKS.entry(name).settings is not None:
        node = TASKS.entry(name).settings.name
        values.update({f"{node}.{key}": value for key, value in (recorded.get(node) or {}).items()})
    return values


def adopt_task(cfg, task: Optional[Dict[str, Any]], source: str):
    """`cfg` with the task the weights of `source` were trained for (`recorded_task`), where the user set no
    TASK.NAME; a key the user set wins, with a logged warning when it differs. Returns a frozen copy."""
    if not task:
        return cfg
    chosen = explicit_keys(cfg)
    if TASK_KEY in chosen:
        if value_at(cfg, TASK_KEY) != task[TASK_KEY]:
            logger.warning("the config sets %s %s, the weights of %s were trained for %s: using the config's",
                           TASK_KEY, value_at(cfg, TASK_KEY), source, task[TASK_KEY])
        return cfg
    adopted = []
    for key, value in task.items():
        if key not in chosen and value_at(cfg, key) != value:
            adopted += [key, value]
            logger.info("%s %s: the task the weights of %s were trained for", key, value, source)
    return with_values(cfg, adopted)
