"""RandAugment's OpenCV kernels give torchvision's affine / sharpness results on whole clips."""

import cv2
import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from snappix.data.rand_augment import VideoRandAugment, adjust_sharpness, warp_affine

BILINEAR = InterpolationMode.BILINEAR


def smooth_clip(t: int, c: int, h: int = 56, w: int = 75, seed: int = 0, margin: int = 0) -> torch.Tensor:
    """uint8 (T, C, H, W) of smooth random content; with ``margin``, fading to the fill value 128 at
    the frame border so that the warps' fill seams (which differ by library) carry no information."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, t * c)).astype(np.float32)
    img = np.stack([cv2.GaussianBlur(noise[..., i], (0, 0), 3) for i in range(t * c)], -1)
    img = (img - img.min()) / (img.max() - img.min()) * 255 - 128
    if margin:
        win = np.ones((h, w), np.float32)
        win[:margin], win[-margin:], win[:, :margin], win[:, -margin:] = 0, 0, 0, 0
        img *= cv2.GaussianBlur(win, (0, 0), margin / 3)[..., None]
    img = np.clip(np.rint(img + 128), 0, 255).astype(np.uint8)
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).reshape(t, c, h, w)


CASES = [
    ("rotate", dict(angle=17.0), lambda x, f: F.rotate(x, 17.0, interpolation=BILINEAR, fill=f)),
    ("rotate-", dict(angle=-28.0), lambda x, f: F.rotate(x, -28.0, interpolation=BILINEAR, fill=f)),
    ("shear_x", dict(shear=(12.0, 0.0), center=(0.0, 0.0)),
     lambda x, f: F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[12.0, 0.0], interpolation=BILINEAR,
                           fill=f, center=[0, 0])),
    ("shear_y", dict(shear=(0.0, -9.0), center=(0.0, 0.0)),
     lambda x, f: F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, -9.0], interpolation=BILINEAR,
                           fill=f, center=[0, 0])),
    ("translate", dict(translate=(7.3, -4.6)),
     lambda x, f: F.affine(x, angle=0.0, translate=[7.3, -4.6], scale=1.0, shear=[0.0, 0.0], interpolation=BILINEAR,
                           fill=f)),
]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_warp_matches_torchvision(name, ours, theirs, channels):
    """Same result except on the one-pixel seam where the frame edge is interpolated with the fill:
    torchvision weights the image there by its coverage twice (``mask * (mask * img - fill) + fill``),
    OpenCV blends once, like PIL."""
    clip = smooth_clip(4, channels, seed=len(name), margin=12)
    a = warp_affine(clip, fill=128, **ours)
    b = theirs(clip, [128.0] * channels)
    coverage = warp_affine(torch.full_like(clip, 255), fill=0, **ours)
    seam = (coverage > 0) & (coverage < 255)
    diff = (a.int() - b.int()).abs()
    assert a.shape == clip.shape and a.dtype == torch.uint8
    assert seam.float().mean() < 0.05
    assert diff[~seam].max() <= 2, f"{name}: max difference {diff[~seam].max()} off the seam"
    assert diff[~seam].float().mean() < 0.5
    assert not torch.equal(a, clip)  # the warp did something


def test_warp_fill_and_large_stacks():
    clip = smooth_clip(100, 3, h=24, w=32)  # 300 channels: more than OpenCV takes in one call
    moved = warp_affine(clip, translate=(16.0, 0.0), fill=7)
    assert (moved[..., :, :15] == 7).all()  # uncovered columns get the fill value
    assert torch.equal(moved[..., :, 17:], clip[..., :, 1:16]) or \
        (moved[..., :, 17:].int() - clip[..., :, 1:16].int()).abs().max() <= 1


@pytest.mark.parametrize("factor", [0.1, 1.0, 1.9])
@pytest.mark.parametrize("channels", [1, 3])
def test_sharpness_matches_torchvision(factor, channels):
    clip = smooth_clip(3, channels, seed=5)
    diff = (adjust_sharpness(clip, factor).int() - F.adjust_sharpness(clip, factor).int()).abs()
    assert diff.max() <= 1


def test_rand_augment_policy_runs_every_op_on_grey_and_rgb():
    ra = VideoRandAugment("rand-m9-n2-inc1")
    for channels in (1, 3):
        clip = smooth_clip(4, channels)
        for name in ra.ops:
            out = ra.apply_op(clip, name, 0.8, sign=-1.0)
            assert out.shape == clip.shape and out.dtype == torch.uint8, name


@pytest.mark.parametrize("channels", [1, 3])
def test_enlarging_crop_resize_matches_torchvision(channels):
    """MultiScaleCrop enlarges crops through OpenCV: torchvision's bilinear result up to rounding."""
    from snappix.data.transforms import resize_up_uint8

    clip = smooth_clip(5, channels, h=56, w=75, seed=9)
    sub = clip[..., 7:7 + 41, 11:11 + 48]
    ours = resize_up_uint8(sub, 56)
    theirs = F.resize(sub, [56, 56], interpolation=BILINEAR, antialias=True)
    assert ours.shape == (5, channels, 56, 56) and ours.dtype == torch.uint8
    assert (ours.int() - theirs.int()).abs().max() <= 1
