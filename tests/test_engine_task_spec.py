"""The task trained weights were trained for, read from the config their checkpoint holds."""

from videonl.config import get_cfg
from videonl.engine.task_spec import recorded_task


def test_a_checkpoints_config_names_its_task_and_the_tasks_own_keys():
    cfg = get_cfg()
    cfg.merge_from_list(["TASK.NAME", "multi_label", "MULTI_LABEL.VIEW_COMBINE", "mean"])
    assert recorded_task(cfg.dump()) == {"TASK.NAME": "multi_label", "MULTI_LABEL.VIEW_COMBINE": "mean",
                                         "MULTI_LABEL.CLIP_LABELS": "overlap", "MULTI_LABEL.THRESHOLD": 0.5}
    assert recorded_task(get_cfg().dump()) == {"TASK.NAME": "single_label"}


def test_a_config_from_before_tasks_is_single_label():
    assert recorded_task("MODEL:\n  NUM_CLASSES: 400\n") == {"TASK.NAME": "single_label"}
