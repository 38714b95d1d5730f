import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F

from videonl.config import load_cfg
from videonl.data.datasets import VideoDataset
from videonl.data.transforms import EvalTransform, TrainTransform, crops_along_long_side, full_frame_window

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
    assert clip.movedim(0, -1).is_contiguous()  # channels-last: [T, H, W, C] in memory


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


def test_train_clip_from_distinct_frames_and_positions_equals_the_clip_of_the_gathered_frames():
    """A window that wraps round a short video repeats frames: each distinct frame is resized once and the clip
    gathered after, the same clip as resizing the repeated frames."""
    frames = random_frames(t=3)
    positions = torch.tensor([0, 1, 2, 0, 1, 2])
    transform = TrainTransform([36, 44], 32, True, MEAN, STD, normalize=False)
    torch.manual_seed(5)
    clip = transform(frames, positions)
    torch.manual_seed(5)
    assert clip.shape == (3, 6, 32, 32) and torch.equal(clip, transform(frames[positions]))


def resize_then_crop_box(height, width, jitter_scales, crop_size):
    """The random crop of resizing the whole frame first, drawn with the same random numbers in the same
    order, mapped back to source pixels: (top, bottom, left, right) edges as fractions."""
    short_side = int(torch.randint(jitter_scales[0], jitter_scales[1] + 1, ()))
    resized_height, resized_width = resized_sizes(height, width, short_side)
    top = int(torch.randint(0, resized_height - crop_size + 1, ()))
    left = int(torch.randint(0, resized_width - crop_size + 1, ()))
    rows, columns = height / resized_height, width / resized_width
    return top * rows, (top + crop_size) * rows, left * columns, (left + crop_size) * columns


@functools.lru_cache
def resized_sizes(height, width, short_side):
    """The size torchvision's resize gives a frame."""
    return tuple(F.resize(torch.zeros(1, height, width), [short_side]).shape[-2:])


@pytest.mark.parametrize("height,width,jitter_scales,crop_size", [
    (48, 64, (20, 30), 20),  # downscaled landscape
    (64, 48, (20, 30), 20),  # downscaled portrait
    (24, 30, (30, 40), 28),  # upscaled
    (45, 45, (40, 50), 36),  # square, both ways
])
def test_train_crop_box_is_the_resize_then_crop_box_to_half_a_source_pixel(height, width, jitter_scales, crop_size):
    transform = TrainTransform(jitter_scales, crop_size, False, MEAN, STD)
    edges = []
    for seed in range(200):
        torch.manual_seed(seed)
        expected = resize_then_crop_box(height, width, jitter_scales, crop_size)
        torch.manual_seed(seed)
        top, left, box_height, box_width = transform.crop_box(height, width)
        box = (top, top + box_height, left, left + box_width)
        assert all(abs(got - want) <= 0.5 for got, want in zip(box, expected)), (seed, box, expected)
        edges.append(box)
    tops, bottoms, lefts, rights = zip(*edges)
    assert min(tops) == 0 and max(bottoms) == height and min(lefts) == 0 and max(rights) == width
    smallest, largest = (round(crop_size * min(height, width) / scale) for scale in jitter_scales[::-1])
    assert {smallest, largest} <= {min(h, w) for h, w in zip(np.subtract(bottoms, tops), np.subtract(rights, lefts))}


@pytest.mark.parametrize("seed", range(4))
def test_train_crop_then_resize_equals_resize_then_crop_inside_a_one_pixel_border(seed):
    """Halving the frame (short side 64 -> 32) puts every crop edge on a source pixel edge, where the two orders
    commute: bitwise equal, except on the crop's outermost ring of pixels, whose antialiasing filter reaches
    outside the crop in the whole-frame resize and is cut off at the crop's edge in ours."""
    frames = random_frames(t=2, h=64, w=96)
    torch.manual_seed(seed)
    clip = TrainTransform([32, 32], 16, False, MEAN, STD, normalize=False)(frames)
    torch.manual_seed(seed)
    top, _, left, _ = resize_then_crop_box(64, 96, (32, 32), 16)
    whole = F.resize(frames.permute(0, 3, 1, 2), [32], antialias=True)
    expected = whole[..., int(top) // 2:int(top) // 2 + 16, int(left) // 2:int(left) // 2 + 16].transpose(0, 1)
    assert torch.equal(clip[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])
    assert not torch.equal(clip, expected)


@pytest.mark.parametrize("long_side,offsets", [
    (340, [0, 42, 84]),  # even slack 84
    (341, [0, 42, 84]),  # odd slack 85: the official integer steps stop one pixel short of the far edge
    (342, [0, 43, 86]),
    (343, [0, 43, 86]),
])
def test_three_crops_take_the_official_offsets_in_both_orientations(long_side, offsets):
    assert crops_along_long_side(256, long_side, 256, 3) == [(0, offset) for offset in offsets]
    assert crops_along_long_side(long_side, 256, 256, 3) == [(offset, 0) for offset in offsets]


def test_one_crop_is_centred_on_both_sides():
    assert crops_along_long_side(48, 64, 32, 1) == [(8, 16)]
    assert crops_along_long_side(65, 49, 32, 1) == [(16, 8)]


@pytest.mark.parametrize("height,width,window", [
    (256, 341, (0, 0, 256, 341)),  # 4:3, kept whole
    (250, 400, (0, 0, 250, 400)),  # exactly 1.6
    (256, 455, (0, 23, 256, 409)),  # 16:9: centre 1.6 x 256 = 409 columns
    (455, 256, (23, 0, 409, 256)),  # portrait 16:9
    (64, 64, (0, 0, 64, 64)),
])
def test_full_frame_view_caps_the_aspect_ratio_at_the_official_1_6(height, width, window):
    assert full_frame_window(height, width) == window
    assert EvalTransform(256, 256, "full", MEAN, STD).windows(height, width) == [window]


KINETICS_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "kinetics400").glob("*.yaml"))


def test_every_kinetics_config_tests_the_official_30_views():
    for config in KINETICS_CONFIGS:
        dataset = VideoDataset([], "test", load_cfg(str(config)))
        transform = dataset.transform
        assert dataset.views_per_video == 30, config.name
        assert transform.windows(256, 341) == [(0, left, 256, 256) for left in (0, 42, 84)], config.name
        assert transform.windows(341, 256) == [(top, 0, 256, 256) for top in (0, 42, 84)], config.name
    assert len(KINETICS_CONFIGS) > 30


@pytest.mark.parametrize("height,width", [(240, 320), (320, 240)])
def test_kinetics_views_of_a_320x240_video_are_the_official_crops_of_its_341x256_resize(height, width):
    cfg = load_cfg(str(KINETICS_CONFIGS[0]))
    transform = VideoDataset([], "test", cfg).transform
    frames = random_frames(t=2, h=height, w=width)
    views = transform(frames, torch.tensor([[0, 1]] * cfg.TEST.NUM_CLIPS))
    resized = F.resize(frames.permute(3, 0, 1, 2), [256], antialias=True)  # [C, T, 256, 341] or [C, T, 341, 256]
    assert views.shape == (30, 3, 2, 256, 256) and views.dtype == torch.uint8
    assert resized.shape[-2:] == (height * 256 // 240, width * 256 // 240)
    for crop, offset in enumerate((0, 42, 84)):
        expected = resized[..., offset:offset + 256] if width > height else resized[..., offset:offset + 256, :]
        assert torch.equal(views[27 + crop], expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("crop,views,size", [("3crop", 6, (48, 48)), ("center", 2, (48, 48)), ("full", 2, (48, 64))])
def test_test_transform_views(crop, views, size, device):
    frames = random_frames(t=6, device=device)
    positions = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = EvalTransform(48, 48, crop, MEAN, STD)(frames, positions)
    assert out.shape == (views, 3, 3) + size and out.device.type == device
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
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
