"""Saccade-VSSL backbones: parameter counts, shapes, registry, focus spotlight (docs/methods/saccade.md, "Backbones")."""

from __future__ import annotations

import pytest
import timm
import torch
from torchvision.models.video.resnet import R2Plus1dStem, VideoResNet, BasicBlock, Conv2Plus1D

import snappix.models  # noqa: F401  (registers the models)
from snappix.models.r2plus1d import FactorisedConv3d, intermediate_width
from snappix.models.saccade_backbones import SaccadeBackbone, _r3d_stages_custom, resize_focus, spotlight

R3D_PARAMS = 14_361_792  # 14.36 M, the paper's R3D
R21D_PARAMS = 14_365_303  # 14.37 M, the reference's R(2+1)D


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_exact():
    assert count(timm.create_model("saccade_r3d")) == R3D_PARAMS
    assert count(timm.create_model("saccade_r21d")) == R21D_PARAMS
    assert round(R3D_PARAMS / 1e6, 2) == 14.36 and round(R21D_PARAMS / 1e6, 2) == 14.37
    # torchvision's R(2+1)D layout with one block per stage is smaller: 12.49 M (shared M per block, 45-wide stem)
    tv = VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [1, 1, 1, 1], R2Plus1dStem)
    tv.fc = torch.nn.Identity()
    assert round(count(tv) / 1e6, 2) == 12.49
    # with a head: + 512 * classes + classes
    assert count(timm.create_model("saccade_r3d", num_classes=101)) == R3D_PARAMS + 512 * 101 + 101


def test_r3d_custom_stages_match_videoresnet():
    """The narrow / grey R3D path assembles the same torchvision blocks: at width 64 it has VideoResNet's count."""
    assert count(_r3d_stages_custom(3, 64)) == R3D_PARAMS


def test_r21d_intermediate_widths():
    assert intermediate_width(3, 64, (3, 7, 7)) == 83  # stem (torchvision: 45)
    assert intermediate_width(64, 128, (3, 3, 3)) == 230
    assert intermediate_width(128, 128, (3, 3, 3)) == 288  # second conv of a block uses its own widths
    assert FactorisedConv3d(256, 512, (1, 1, 1)).mid_channels == 170


@pytest.mark.parametrize("name", ["saccade_r3d", "saccade_r21d"])
def test_shapes_at_16x112(name):
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        pooled, conv5 = model.forward_maps(torch.rand(1, 3, 16, 112, 112))
    assert conv5.shape == (1, 512, 2, 7, 7)
    assert pooled.shape == (1, 512)
    torch.testing.assert_close(pooled, conv5.mean(dim=(2, 3, 4)))


def test_heads_and_dropout():
    feat_model = timm.create_model("saccade_r3d", width=8, in_chans=1).eval()
    x = torch.rand(2, 1, 8, 32, 32)
    assert feat_model(x).shape == (2, 64)  # num_classes=0: the pooled feature (8 * width)
    clf = timm.create_model("saccade_r3d", width=8, in_chans=1, num_classes=5, dropout=0.7, drop_path_rate=0.1)
    assert clf.head_drop.p == 0.7
    assert clf.eval()(x).shape == (2, 5)
    clf.reset_classifier(0)
    assert clf(x).shape == (2, 64)


def test_resize_focus():
    m = torch.zeros(2, 1, 8, 8)
    m[:, :, 2:6, 2:6] = 1
    r = resize_focus(m, (4, 4, 4))
    assert r.shape == (2, 1, 1, 4, 4)
    assert resize_focus(torch.ones(2, 1, 8, 8), (4, 7, 7)).eq(1).all()
    m5 = torch.rand(2, 1, 8, 16, 16)
    assert resize_focus(m5, (4, 8, 8)).shape == (2, 1, 4, 8, 8)
    assert resize_focus(m5, (8, 16, 16)) is m5
    with pytest.raises(ValueError):
        resize_focus(torch.rand(2, 2, 8, 8), (1, 4, 4))


def _narrow(arch: str, level: int) -> SaccadeBackbone:
    torch.manual_seed(0)
    return SaccadeBackbone(arch, width=8, in_chans=1, focus_level=level, norm_mean=None, norm_std=None).eval()


@pytest.mark.parametrize("arch", ["r3d", "r21d"])
def test_spotlight_level0_is_x_plus_x_map(arch):
    model = _narrow(arch, 0)
    x = torch.rand(2, 1, 8, 32, 32)
    m = (torch.rand(2, 1, 32, 32) > 0.5).float()
    with torch.no_grad():
        got = model(x, m)
        model.focus_level = -1
        expected = model(x + x * m[:, :, None])
        ignored = model(x, m)  # level -1 ignores the map
        plain = model(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ignored, plain)
    assert not torch.allclose(got, plain)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_spotlight_deeper_level(level):
    model = _narrow("r3d", level)
    x = torch.rand(2, 1, 8, 32, 32)
    m = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        got_pooled, got_map = model.forward_maps(x, m)
        h = x
        for k, stage in enumerate(model.stages, start=1):
            h = stage(h)
            if k == level:
                mk = torch.nn.functional.interpolate(m, size=h.shape[-2:], mode="bilinear", align_corners=True)
                h = h + h * mk[:, :, None]
        zero_pooled, _ = model.forward_maps(x, torch.zeros_like(m))
        model.focus_level = -1
        plain_pooled, _ = model.forward_maps(x)
    torch.testing.assert_close(got_map, h)
    torch.testing.assert_close(zero_pooled, plain_pooled)  # a zero map is the identity
    assert not torch.allclose(got_pooled, plain_pooled)


def test_spotlight_function_and_errors():
    x = torch.rand(2, 3, 4, 6, 6)
    torch.testing.assert_close(spotlight(x, None), x)
    torch.testing.assert_close(spotlight(x, torch.ones(2, 1, 6, 6)), 2 * x)
    with pytest.raises(ValueError):
        spotlight(x, torch.ones(3, 1, 6, 6))
    with pytest.raises(ValueError):
        SaccadeBackbone("r3d", focus_level=6)
    with pytest.raises(ValueError):
        SaccadeBackbone("r50")
    with pytest.raises(ValueError):
        _narrow("r3d", 0)(torch.rand(1, 3, 8, 32, 32))  # 3 channels into a grey model
