"""MODEL.INIT into a fresh model: inflated ImageNet ResNets, our checkpoints, a classifier for other classes."""

import logging

import pytest
import torch
import torchvision
from torch import nn

from videonl.config import load_cfg
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.engine.initialization import initialize
from videonl.engine.weight_sources import open_weights
from videonl.models import build_model
from videonl.models.conversions import CheckpointError
from videonl.models.loading import LoadReport

from helpers import C2D, assert_close_to, randomize_batch_norms, small_c2d


def test_inflated_c2d_sees_every_frame_as_the_2d_resnet_does(tmp_path):
    torch.manual_seed(0)
    resnet = randomize_batch_norms(torchvision.models.resnet50(weights=None)).eval()
    path = tmp_path / "resnet50_2d.pth"
    torch.save(resnet.state_dict(), path)
    model = build_model(load_cfg(C2D)).eval()

    report = initialize(model, open_weights(str(path)))

    assert report == LoadReport(missing=["head.fc.weight", "head.fc.bias"], unexpected=[], mismatched=[])
    image = torch.randn(2, 3, 64, 64)
    clip = image.unsqueeze(2).expand(-1, -1, 4, -1, -1).contiguous()
    with torch.no_grad():
        expected = nn.Sequential(*list(resnet.children())[:-2])(image)  # before avgpool and fc
        features = model.features(clip)
    assert features.shape[2] == 2  # pool2 halves the 4 frames
    for t in range(features.shape[2]):
        assert_close_to(features[:, :, t], expected)


@pytest.mark.parametrize("blocks, depth", [([1, 1, 1, 1], 50), ([1, 1, 7, 1], 101)])
def test_imagenet_init_inflates_the_shallowest_torchvision_resnet_holding_the_models_blocks(monkeypatch, blocks,
                                                                                            depth):
    resnet_2d = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, blocks)
    requests = []

    def pretrained_model(name, weights):
        requests.append((name, weights))
        return resnet_2d

    monkeypatch.setattr(torchvision.models, "get_model", pretrained_model)
    model = build_model(load_cfg(C2D, ["RESNET.BLOCKS", str(blocks)]))
    initialize(model, open_weights("imagenet"))

    assert requests == [(f"resnet{depth}", "IMAGENET1K_V1")]
    torch.testing.assert_close(model.res4[-1].conv_b.weight[:, :, 0], resnet_2d.layer3[-1].conv2.weight)


def test_initialize_rejects_what_it_cannot_load(tmp_path):
    model = small_c2d()
    (tmp_path / "weights.txt").write_text("not weights")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pth")

    with pytest.raises(ValueError, match="MODEL.INIT must be '', 'imagenet' or an existing"):
        initialize(model, open_weights("imagenet21k"))
    with pytest.raises(ValueError, match="MODEL.INIT must be"):
        initialize(model, open_weights(str(tmp_path / "weights.txt")))
    with pytest.raises(ValueError, match=r"none with the model's \[4, 1, 1, 1\]"):
        initialize(small_c2d("RESNET.BLOCKS", "[4,1,1,1]"), open_weights("imagenet"))
    with pytest.raises(CheckpointError, match=r"neither a videonl checkpoint, a torchvision .*\['state_dict'\]"):
        initialize(model, open_weights(str(tmp_path / "wrapped.pth")))


def test_init_from_a_checkpoint_for_other_classes_reinitialises_only_the_classifier(tmp_path, caplog):
    source = small_c2d("MODEL.NUM_CLASSES", "7")
    save_checkpoint(str(tmp_path / "kinetics.pth"), source, load_cfg(C2D))
    model = small_c2d()
    fresh_fc = model.head.fc.weight.detach().clone()

    with caplog.at_level(logging.INFO, logger="videonl.engine.initialization"):
        report = initialize(model, open_weights(str(tmp_path / "kinetics.pth")))

    assert report.missing == ["head.fc.weight", "head.fc.bias"] and "7 classes, the model 5" in caplog.text
    torch.testing.assert_close(model.head.fc.weight, fresh_fc)
    torch.testing.assert_close(model.res5[0].conv_b.weight, source.res5[0].conv_b.weight)
