"""Clip transforms: shapes, dtypes, one set of random parameters for all frames, timm RandAugment semantics."""

import random

import numpy as np
import pytest
import torch

from snappix.data import transforms as T


def frames(t=8, h=64, w=80, c=3, seed=0, same=False):
    rng = np.random.default_rng(seed)
    if same:
        return np.repeat(rng.integers(0, 256, (1, h, w, c), dtype=np.uint8), t, axis=0)
    return rng.integers(0, 256, (t, h, w, c), dtype=np.uint8)


def test_frames_to_clip_and_gray_methods():
    f = frames(2, 4, 5)
    clip = T.frames_to_clip(f)
    assert clip.shape == (2, 3, 4, 5) and clip.dtype == torch.uint8
    assert torch.equal(clip[1, 2], torch.from_numpy(f[1, :, :, 2]))
    assert torch.equal(T.frames_to_clip(f, "first")[:, 0], torch.from_numpy(f[..., 0]))
    mean = T.frames_to_clip(f, "mean")[:, 0].numpy()
    assert np.abs(mean.astype(int) - np.round(f.mean(-1))).max() <= 1
    luma = T.to_gray(clip.float(), "luma")[:, 0].numpy()
    assert np.allclose(luma, f @ np.array([0.299, 0.587, 0.114]), atol=1e-3)
    with pytest.raises(ValueError):
        T.frames_to_clip(f.astype(np.float32))


def test_to_float_layout_range_and_normalize():
    clip = T.to_float_cthw(torch.full((4, 1, 3, 3), 255, dtype=torch.uint8))
    assert clip.shape == (1, 4, 3, 3) and clip.dtype == torch.float32 and clip.max() == 1.0
    n = T.normalize(clip, [0.5], [0.25])
    assert torch.allclose(n, torch.full_like(n, 2.0))


def test_short_side_resize_and_uniform_crops():
    clip = T.frames_to_clip(frames(2, 64, 80, 1))
    assert T.short_side_resize(clip, 32).shape == (2, 1, 32, 40)
    x = torch.arange(10).view(1, 1, 1, 10).expand(1, 1, 4, 10)
    crops = [T.uniform_crop(x, 4, i, 3)[0, 0, 0].tolist() for i in range(3)]
    assert crops == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]  # left, centre, right along the long side
    assert T.uniform_crop(x, 4, 0, 1)[0, 0, 0].tolist() == [3, 4, 5, 6]
    tall = x.transpose(-1, -2)
    assert T.uniform_crop(tall, 4, 2, 3)[0, 0, :, 0].tolist() == [6, 7, 8, 9]


def test_multi_scale_crop_params_follow_group_multiscale_crop():
    crop = T.MultiScaleCrop(112)
    rng = random.Random(0)
    allowed = {112, 98, 84, 73}  # int(112 * s) for s in (1, .875, .75, .66), 111/112 snapped to 112
    for _ in range(300):
        top, left, ch, cw = crop.params(112, 149, rng)
        assert ch in allowed and cw in allowed
        scales = sorted(allowed, reverse=True)
        assert abs(scales.index(ch) - scales.index(cw)) <= 1  # max_distort 1
        hs, ws = (112 - ch) // 4, (149 - cw) // 4
        assert top in {k * hs for k in range(5)} and left in {k * ws for k in range(5)}
    assert crop(T.frames_to_clip(frames(3, 112, 149, 1))).shape == (3, 1, 112, 112)


@pytest.mark.parametrize("make", [
    lambda: T.PretrainTransform(56),
    lambda: T.FinetuneTrainTransform(56, reprob=1.0),
    lambda: T.EvalTransform(56, 64),
])
def test_pipelines_apply_the_same_parameters_to_every_frame(make):
    tr = make()
    for seed in range(5):
        torch.manual_seed(seed)
        out = tr(frames(6, 72, 96, 3, seed, same=True), rng=random.Random(seed)) if not isinstance(
            tr, T.EvalTransform) else tr(frames(6, 72, 96, 3, seed, same=True))
        assert out.shape == (1, 6, 56, 56) and out.dtype == torch.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        if not isinstance(tr, T.FinetuneTrainTransform):
            assert (out == out[:, :1]).all()
        else:  # erasing noise differs per pixel; outside the erased box every frame is identical
            same = (out == out[:, :1]).all(dim=1)
            assert same.float().mean() > 0.3


def test_finetune_without_erasing_keeps_frames_identical_and_flip_varies():
    tr = T.FinetuneTrainTransform(48, reprob=0.0)
    outs = []
    for seed in range(6):
        torch.manual_seed(seed)
        out = tr(frames(4, 64, 80, 3, 1, same=True), rng=random.Random(seed))
        assert (out == out[:, :1]).all()
        outs.append(out)
    assert len({o.sum().item() for o in outs}) > 1


def test_rand_augment_parse_and_op_semantics():
    assert T.parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == {
        "m": 7.0, "n": 4, "mstd": 0.5, "mmax": 10.0, "inc": True, "p": 0.5}
    with pytest.raises(ValueError):
        T.parse_rand_augment("augmix-m5")
    with pytest.raises(ValueError):
        T.parse_rand_augment("rand-m7-q3")
    ra = T.VideoRandAugment("rand-m9-n2-inc1")
    clip = T.frames_to_clip(frames(3, 32, 40, 3, 2))
    assert torch.equal(ra.apply_op(clip, "PosterizeIncreasing", 1.0), torch.zeros_like(clip))  # 0 bits
    assert torch.equal(ra.apply_op(clip, "SolarizeIncreasing", 0.0), clip)  # threshold 256
    assert torch.equal(ra.apply_op(clip, "SolarizeIncreasing", 1.0), 255 - clip)  # threshold 0
    assert torch.equal(ra.apply_op(clip, "Invert", 0.3), 255 - clip)
    bright = ra.apply_op(clip, "BrightnessIncreasing", 1.0, sign=1.0)  # factor 1.9
    assert torch.equal(bright, (clip.float() * 1.9).clamp(0, 255).to(torch.uint8))
    moved = ra.apply_op(clip, "TranslateXRel", 1.0)  # 45 % of the width, filled with 128
    assert (moved[..., :, :18] == 128).all() or (moved[..., :, -18:] == 128).all()
    for name in T.RAND_INCREASING_OPS:
        out = ra.apply_op(clip, name, 0.7)
        assert out.shape == clip.shape and out.dtype == torch.uint8
        if name != "ColorIncreasing":
            assert not torch.equal(out, clip), name


def test_rand_augment_magnitude_sampling_is_clipped():
    ra = T.VideoRandAugment("rand-m9-n4-mstd5")
    mags = [ra._magnitude(random.Random(s)) for s in range(500)]
    assert min(mags) == 0.0 and max(mags) == 1.0 and 0.6 < np.mean(mags) < 0.9


def test_cube_random_erasing_box_through_all_frames():
    clip = torch.full((1, 5, 40, 40), 0.5)
    out = T.CubeRandomErasing(p=1.0)(clip.clone(), rng=random.Random(3))
    changed = out != 0.5
    assert changed.any() and (changed == changed[:, :1]).all()  # same box in every frame
    assert out.min() >= 0 and out.max() <= 1
    rows, cols = torch.nonzero(changed[0, 0], as_tuple=True)
    box = changed[0, 0, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.float().mean() > 0.95  # a filled rectangle
    assert torch.equal(T.CubeRandomErasing(p=0.0)(clip.clone()), clip)
