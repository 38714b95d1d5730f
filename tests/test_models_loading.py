"""Loading a state dict into a model: every key that does not land is named."""

import logging

import pytest
import torch

from videonl.models.conversions import CheckpointError
from videonl.models.loading import LoadReport, load_complete_state_dict, load_state_dict_checked

from helpers import randomize_batch_norms, small_c2d


def test_load_names_missing_and_unexpected_keys_and_loads_the_rest(caplog):
    model, state = small_c2d(), small_c2d().state_dict()
    del state["res3.0.conv_b.weight"]
    state["res9.0.conv_a.weight"] = torch.zeros(1)

    with caplog.at_level(logging.WARNING, logger="videonl.models.loading"):
        report = load_state_dict_checked(model, state)

    assert report == LoadReport(missing=["res3.0.conv_b.weight"], unexpected=["res9.0.conv_a.weight"], mismatched=[])
    assert "res3.0.conv_b.weight" in caplog.text and "res9.0.conv_a.weight" in caplog.text
    torch.testing.assert_close(model.res4[0].conv_a.weight, state["res4.0.conv_a.weight"])


def test_shape_mismatch_fails_naming_the_key_and_both_shapes():
    model, state = small_c2d(), small_c2d("MODEL.NUM_CLASSES", "7").state_dict()
    with pytest.raises(CheckpointError, match=r"head\.fc\.weight: checkpoint \(7, 256\) vs model \(5, 256\)"):
        load_state_dict_checked(model, state)


def test_shape_mismatch_can_be_skipped_and_is_reported():
    model, source = small_c2d(), randomize_batch_norms(small_c2d("MODEL.NUM_CLASSES", "7"))
    classifier = model.head.fc.weight.detach().clone()

    report = load_state_dict_checked(model, source.state_dict(), skip_mismatched=True)

    assert report == LoadReport(missing=[], unexpected=[], mismatched=["head.fc.weight", "head.fc.bias"])
    torch.testing.assert_close(model.head.fc.weight, classifier)
    torch.testing.assert_close(model.res5[0].bn_b.running_var, source.res5[0].bn_b.running_var)


def test_a_complete_load_names_what_does_not_fit_and_counts_the_rest():
    model, state = small_c2d(), small_c2d().state_dict()
    missing = [name for name, _ in model.named_parameters()][:7]
    for key in missing:
        del state[key]
    state["res9.0.conv_a.weight"] = torch.zeros(1)

    with pytest.raises(CheckpointError) as error:
        load_complete_state_dict(model, state, "other.pth", "the model of c2d")

    assert str(error.value) == (f"other.pth does not fit the model of c2d:\n"
                                f"  model weights the checkpoint does not provide: {', '.join(missing[:5])} and 2 more\n"
                                f"  weights the model has no place for: res9.0.conv_a.weight")
