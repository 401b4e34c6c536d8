"""R3D and R(2+1)D backbones of Saccade-VSSL with the focus spotlight (Lai et al., "Self-supervised Video
Representation Learning by Saccades and Fixations", IEEE TCSVT 2023, https://doi.org/10.1109/TCSVT.2023.3301698;
earlier version https://openreview.net/forum?id=PQXP4WZNcM). See docs/methods/saccade.md, "Backbones".

Layout (one basic residual block per stage, the VCOP-style ResNet-10 of the paper), at a
``(B, 3, 16, 112, 112)`` clip::

    level 0  input, normalised                             3   x 16 x 112 x 112
    level 1  conv1: 3 x 7 x 7, stride (1, 2, 2), BN, ReLU   64  x 16 x 56 x 56
    level 2  conv2: block, 64                              64  x 16 x 56 x 56
    level 3  conv3: block, 128, stride 2                   128 x  8 x 28 x 28
    level 4  conv4: block, 256, stride 2                   256 x  4 x 14 x 14
    level 5  conv5: block, 512, stride 2                   512 x  2 x  7 x  7
             global average pool                           512

* ``saccade_r3d``: full 3-D convolutions, built with torchvision's ``VideoResNet`` (``BasicBlock``,
  ``Conv3DSimple``, ``BasicStem``, layers ``(1, 1, 1, 1)``): 14,361,792 parameters without a head.
* ``saccade_r21d``: factorised convolutions with per-convolution intermediate widths
  (:mod:`snappix.models.r2plus1d`): 14,365,303 parameters without a head (torchvision's R(2+1)D layout would
  have 12.49 M).

**Focus spotlight.** With a focus map ``m`` (1 inside the fixation box, 0 outside; any values work) and
``focus_level`` L in 0..5, the activation at level L becomes ``x + x * m``, ``m`` resized to the activation's
size: features inside the box are doubled, the others untouched. ``m = 0`` is the identity. Level 0 acts on
the normalised input (as the reference, which normalises on the GPU before the model). ``focus_level=-1``
(retrieval, linear probe, finetuning) ignores any map.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import register_model
from torch import nn
from torchvision.models.video.resnet import BasicBlock, BasicStem, Conv3DSimple, VideoResNet

from snappix.data.constants import K710_SSV2_MEAN, K710_SSV2_STD
from snappix.models.classifier_utils import InputNorm
from snappix.models.r2plus1d import r2plus1d_stages

__all__ = ["SaccadeBackbone", "spotlight", "resize_focus", "FOCUS_LEVELS"]  # + the registered names (timm)

_log = logging.getLogger(__name__)

#: valid ``focus_level`` values: -1 (off), 0 (input), 1..5 (after conv1 .. conv5)
FOCUS_LEVELS = tuple(range(-1, 6))


def resize_focus(focus: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A focus map resized to an activation of spatio-temporal ``size = (T, H, W)``, ready to broadcast.

    Args:
        focus: float ``(B, 1, H0, W0)`` (the same map for every frame) or ``(B, 1, T0, H0, W0)``; any float dtype.
        size: the activation's ``(T, H, W)``.

    Returns:
        ``(B, 1, 1, H, W)`` for a 4-D map or a 5-D map with ``T0 = 1``, else ``(B, 1, T, H, W)``. Spatial
        resizing is bilinear with ``align_corners=True`` (the reference's ``nn.Upsample``), temporal resizing
        trilinear; a map that already has the size is returned unchanged.

    Raises:
        ValueError: a map that is not 4-D / 5-D or has more than one channel.
    """
    t, h, w = (int(s) for s in size)
    if focus.dim() == 4:
        focus = focus.unsqueeze(2)
    if focus.dim() != 5 or focus.shape[1] != 1:
        raise ValueError(f"a focus map must be (B, 1, H, W) or (B, 1, T, H, W), got {tuple(focus.shape)}")
    if focus.shape[2] == 1:
        if tuple(focus.shape[3:]) != (h, w):
            focus = F.interpolate(focus[:, :, 0], size=(h, w), mode="bilinear", align_corners=True).unsqueeze(2)
        return focus
    if tuple(focus.shape[2:]) != (t, h, w):
        focus = F.interpolate(focus, size=(t, h, w), mode="trilinear", align_corners=True)
    return focus


def spotlight(x: torch.Tensor, focus: torch.Tensor | None) -> torch.Tensor:
    """``x + x * resize_focus(focus, x.shape[2:])`` (out of place); ``focus=None`` returns ``x``.

    Args:
        x: activation ``(B, C, T, H, W)``.
        focus: see :func:`resize_focus`; the batch size must be ``B``.

    Raises:
        ValueError: a batch-size mismatch or a malformed map.
    """
    if focus is None:
        return x
    if focus.shape[0] != x.shape[0]:
        raise ValueError(f"the focus map has batch size {focus.shape[0]}, the clips {x.shape[0]}")
    m = resize_focus(focus, x.shape[2:]).to(dtype=x.dtype, device=x.device)
    return x + x * m


def _r3d_stages(in_chans: int, width: int) -> nn.ModuleList:
    """``[stem, layer1, .., layer4]`` of torchvision's ``VideoResNet`` with one ``BasicBlock`` per stage."""
    if width != 64 or in_chans != 3:
        # VideoResNet fixes 3 input channels and 64 stem channels: a narrow or grey R3D uses the same torchvision
        # blocks (BasicBlock, Conv3DSimple) assembled below, identical in layout
        return _r3d_stages_custom(in_chans, width)
    net = VideoResNet(BasicBlock, [Conv3DSimple] * 4, [1, 1, 1, 1], BasicStem)
    return nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])


def _r3d_stages_custom(in_chans: int, width: int) -> nn.ModuleList:
    widths = (width, width, 2 * width, 4 * width, 8 * width)
    stem = nn.Sequential(nn.Conv3d(in_chans, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                         nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    stages = [stem]
    for k in range(4):
        cin, cout, stride = widths[k], widths[k + 1], 1 if k == 0 else 2
        down = None
        if stride != 1:
            down = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))
        stages.append(nn.Sequential(BasicBlock(cin, cout, Conv3DSimple, stride, down)))
    out = nn.ModuleList(stages)
    for m in out.modules():  # torchvision's VideoResNet initialisation
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return out


class SaccadeBackbone(nn.Module):
    """R3D / R(2+1)D with one block per stage, an optional focus spotlight and an optional linear head.

    Args:
        arch: ``"r3d"`` or ``"r21d"``.
        num_classes: 0 (default): :meth:`forward` returns the pooled ``(B, 8 * width)`` feature; > 0: logits.
        dropout: dropout before the linear head (finetuning recipe: 0.7); unused when ``num_classes=0``.
        focus_level: -1 (off, default), 0 (input) or 1..5 (after conv1 .. conv5); an attribute that may be changed.
        in_chans: input channels (3 RGB; 1 for snappix's grey clips).
        width: stem width (64 = the paper's; a smaller one gives a narrow network for CPU demos).
        norm_mean, norm_std: input normalisation inside the model; ``"auto"`` = ImageNet statistics for 3 channels,
            snappix's grey K710+SSV2 ones otherwise; ``None`` for both = the input is already normalised.
        img_size, num_frames: accepted for the shared entry points; the network takes any size (16 x 112^2 gives a
            2 x 7 x 7 conv5 map).

    Input: ``video`` float ``(B, in_chans, T, H, W)`` in linear ``[0, 1]`` (or normalised with ``norm_*=None``);
    ``focus`` float ``(B, 1, H, W)`` or ``(B, 1, T, H, W)``, see :func:`spotlight`.

    Raises:
        ValueError: unknown ``arch``, ``focus_level`` outside -1..5, ``num_classes < 0``, a wrong clip shape.
    """

    def __init__(self, arch: str = "r3d", num_classes: int = 0, dropout: float = 0.0, focus_level: int = -1,
                 in_chans: int = 3, width: int = 64, norm_mean: str | float | Sequence[float] | None = "auto",
                 norm_std: str | float | Sequence[float] | None = "auto", img_size: int = 112,
                 num_frames: int = 16) -> None:
        super().__init__()
        if arch not in ("r3d", "r21d"):
            raise ValueError(f"arch must be 'r3d' or 'r21d', got {arch!r}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.arch, self.in_chans, self.width = arch, in_chans, width
        self.img_size, self.num_frames = img_size, num_frames
        self.focus_level = focus_level
        if norm_mean == "auto" or norm_std == "auto":
            rgb = in_chans == 3
            norm_mean = IMAGENET_DEFAULT_MEAN if rgb else K710_SSV2_MEAN
            norm_std = IMAGENET_DEFAULT_STD if rgb else K710_SSV2_STD
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        if arch == "r3d":
            self.stages = _r3d_stages(in_chans, width)
        else:
            self.stages = r2plus1d_stages(in_chans, (width, width, 2 * width, 4 * width, 8 * width))
        self.num_features = self.embed_dim = 8 * width
        self.num_classes = num_classes
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def focus_level(self) -> int:
        """-1 (no spotlight), 0 (input) or 1..5 (after conv1 .. conv5)."""
        return self._focus_level

    @focus_level.setter
    def focus_level(self, level: int) -> None:
        if level not in FOCUS_LEVELS:
            raise ValueError(f"focus_level must be -1 (off), 0 (input) or 1..5 (after conv1..conv5), got {level}")
        self._focus_level = int(level)

    def _check(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != self.in_chans or not video.is_floating_point():
            raise ValueError(f"saccade_{self.arch} expects a float clip (B, {self.in_chans}, T, H, W), got "
                             f"{tuple(video.shape)} {video.dtype}")

    def forward_maps(self, video: torch.Tensor, focus: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled feature and conv5 map.

        Returns:
            ``pooled`` ``(B, 8 * width)`` (the mean of ``conv5`` over time and space) and ``conv5``
            ``(B, 8 * width, T', H', W')`` (``(B, 512, 2, 7, 7)`` at 16 x 112^2), in the activation dtype.

        Raises:
            ValueError: a wrong clip shape, or a focus map whose batch size or shape does not fit.
        """
        self._check(video)
        level = self.focus_level if focus is not None else -1
        x = self.input_norm(video)
        if level == 0:
            x = spotlight(x, focus)
        for k, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if level == k:
                x = spotlight(x, focus)
        return x.mean(dim=(2, 3, 4)), x

    def forward_features(self, video: torch.Tensor, focus: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled ``(B, 8 * width)`` feature (512-d for the paper's width); see :meth:`forward_maps`."""
        return self.forward_maps(video, focus)[0]

    def forward(self, video: torch.Tensor, focus: torch.Tensor | None = None) -> torch.Tensor:
        """``num_classes=0``: the pooled feature ``(B, 8 * width)``; otherwise logits ``(B, num_classes)``
        (dropout, then the linear head)."""
        feat = self.forward_features(video, focus)
        if self.num_classes == 0:
            return feat
        return self.head(self.head_drop(feat))

    def get_classifier(self) -> nn.Module:
        """The linear head (``nn.Identity`` when ``num_classes=0``)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a fresh ``Linear(8 * width, num_classes)`` (0: no head)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


#: options of other models that the shared entry points pass to every model
_FOREIGN_KWARGS = ("drop_path_rate", "init_scale", "drop_rate", "attn_drop_rate", "use_learnable_pos_emb",
                   "tubelet_size", "patch_size", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _create(arch: str, pretrained: bool, kwargs: dict) -> SaccadeBackbone:
    if pretrained:
        raise ValueError("no pretrained weights are registered for snappix models; load a Saccade-VSSL checkpoint "
                         "with snappix.methods.pretrained.load_pretrained instead")
    if kwargs.get("head_drop_rate") is not None and "dropout" not in kwargs:  # run_finetuning.py --head_drop_rate
        kwargs["dropout"] = kwargs.pop("head_drop_rate")
    kwargs.pop("head_drop_rate", None)
    given = {k: kwargs.pop(k) for k in _FOREIGN_KWARGS if k in kwargs}
    given = {k: v for k, v in given.items() if v not in (None, 0, 0.0) and not k.startswith(("pretrained", "cache"))}
    if given:
        _log.info("saccade_%s: ignoring %s (options of other models; the head's dropout is `dropout`)", arch,
                  ", ".join(f"{k}={v!r}" for k, v in given.items()))
    return SaccadeBackbone(arch=arch, **kwargs)


@register_model
def saccade_r3d(pretrained: bool = False, **kwargs) -> SaccadeBackbone:
    """Saccade-VSSL's R3D (one block per stage, torchvision ``VideoResNet``): 14,361,792 parameters without a
    head, 512-d pooled feature, conv5 512 x 2 x 7 x 7 at 16 x 112^2."""
    return _create("r3d", pretrained, kwargs)


@register_model
def saccade_r21d(pretrained: bool = False, **kwargs) -> SaccadeBackbone:
    """Saccade-VSSL's R(2+1)D (one block per stage, per-convolution intermediate widths): 14,365,303 parameters
    without a head, 512-d pooled feature, conv5 512 x 2 x 7 x 7 at 16 x 112^2."""
    return _create("r21d", pretrained, kwargs)
