import pytest
import torch

from videonl.data.transforms import EvalTransform, TrainTransform, crops_along_long_side

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def random_frames(t=4, h=48, w=64, device="cpu"):
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(device)


def normalized(frames_thwc):
    x = frames_thwc.float() / 255
    x = (x - torch.tensor(MEAN, device=x.device)) / torch.tensor(STD, device=x.device)
    return x.permute(3, 0, 1, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_train_transform_shape_and_scale_range(device):
    frames = random_frames(device=device)
    transform = TrainTransform([36, 44], 32, True, MEAN, STD)
    clip = transform(frames)
    assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32 and clip.device.type == device


def test_train_transform_without_resize_or_crop_is_the_frame_or_its_mirror():
    frames = random_frames(h=48, w=48)
    transform = TrainTransform([48, 48], 48, True, MEAN, STD)
    plain, mirrored = normalized(frames), normalized(frames.flip(2))
    seen = set()
    torch.manual_seed(0)
    for _ in range(20):
        clip = transform(frames)
        if torch.allclose(clip, plain, atol=1e-5):
            seen.add("plain")
        elif torch.allclose(clip, mirrored, atol=1e-5):
            seen.add("mirrored")
        else:
            raise AssertionError("neither the frames nor their mirror")
    assert seen == {"plain", "mirrored"}
    assert torch.allclose(TrainTransform([48, 48], 48, False, MEAN, STD)(frames), plain, atol=1e-5)


def test_train_short_side_is_drawn_from_the_jitter_range(monkeypatch):
    import videonl.data.transforms as transforms

    sizes = []
    resize = transforms.resize_short_side

    def spy(frames, size):
        out = resize(frames, size)
        sizes.append((size, min(out.shape[-2:])))
        return out

    monkeypatch.setattr(transforms, "resize_short_side", spy)
    torch.manual_seed(0)
    for _ in range(40):
        TrainTransform([20, 30], 20, False, MEAN, STD)(random_frames())
    assert all(size == short and 20 <= size <= 30 for size, short in sizes)
    assert {20, 30} <= {size for size, _ in sizes}


def test_three_crops_run_along_the_long_side():
    assert crops_along_long_side(48, 64, 48, 3) == [(0, 0), (0, 8), (0, 16)]
    assert crops_along_long_side(64, 48, 48, 3) == [(0, 0), (8, 0), (16, 0)]
    assert crops_along_long_side(48, 64, 32, 1) == [(8, 16)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("crop,views,size", [("3crop", 6, (48, 48)), ("center", 2, (48, 48)), ("full", 2, (48, 64))])
def test_test_transform_views(crop, views, size, device):
    frames = random_frames(t=6, device=device)
    positions = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = EvalTransform(48, 48, crop, MEAN, STD)(frames, positions)
    assert out.shape == (views, 3, 3) + size and out.device.type == device
    out, frames = out.cpu(), frames.cpu()
    first_clip = normalized(frames[:3])
    if crop == "full":
        assert torch.allclose(out[0], first_clip, atol=1e-5)
    if crop == "3crop":
        assert torch.allclose(out[2], first_clip[..., 16:], atol=1e-5)  # clip 0, right crop
        assert torch.allclose(out[3], normalized(frames[3:])[..., :48], atol=1e-5)  # clip 1, left crop


def test_unknown_test_crop_is_named():
    with pytest.raises(ValueError, match="'five'"):
        EvalTransform(256, 256, "five", MEAN, STD)


@pytest.mark.parametrize("device", DEVICES)
def test_uint8_views_normalised_on_the_device_equal_normalised_views(device):
    from videonl.data.loader import model_input
    from videonl.config import get_cfg

    cfg = get_cfg()
    cfg.DATA.MEAN, cfg.DATA.STD = list(MEAN), list(STD)
    frames, positions = random_frames(t=6), torch.tensor([[0, 1, 2], [3, 4, 5]])
    raw = EvalTransform(48, 48, "3crop", MEAN, STD, normalize=False)(frames, positions)
    assert raw.dtype == torch.uint8
    expected = EvalTransform(48, 48, "3crop", MEAN, STD)(frames, positions)
    moved = model_input(raw, cfg, torch.device(device))
    assert moved.device.type == device and torch.allclose(moved.cpu(), expected, atol=1e-5)
    torch.manual_seed(3)
    clip = TrainTransform([48, 56], 40, True, MEAN, STD, normalize=False)(frames)
    torch.manual_seed(3)
    assert torch.allclose(model_input(clip, cfg, torch.device(device)).cpu(),
                          TrainTransform([48, 56], 40, True, MEAN, STD)(frames), atol=1e-5)
