"""SVC2D: shift-variant 2-D CNN on a single coded image (Kumawat et al., TPAMI 2023, ``C2DPt``; SnapPix's
``svc2d`` baseline, DAC'25 §5.2).

A coded image is not shift-invariant: pixel ``(y, x)`` integrated the time slots of tile entry
``(y mod 8, x mod 8)``. The first layer therefore uses a different 3x3 kernel for each of the 64 tile
positions (:class:`PatternConv`); the rest is a VGG-like 2-D CNN::

    sensor (TPAMI pattern, coded_type "pami") -> (Y - 0.2277) / 0.2425             1 x 112 x 112
    stage 0  PatternConv 64, BN, ReLU, max-pool 2                                 -> 64  x 56 x 56
    stage 1  conv2 128, BN, ReLU, max-pool 2                                       -> 128 x 28 x 28
    stage 2  conv3a 256, ReLU, conv3b 256, BN, ReLU, max-pool 2                    -> 256 x 14 x 14
    stage 3  conv4a 512, ReLU, conv4b 512, BN, ReLU, max-pool 2                    -> 512 x  7 x  7
    stage 4  conv5a 512, ReLU, conv5b 512, BN, ReLU, max-pool 2 padding 1          -> 512 x  4 x  4 = 8192
    dropout 0.5 -> fc6 8192 -> 4096, ReLU -> dropout 0.5 -> fc7 4096 -> num_classes

Differences from SnapPix's code, on purpose: logits instead of ``log_softmax``; no unused ``bn6``
(SnapPix's 44.47 M = ours 44.46 M + its 8,192 unused BatchNorm parameters); ``PatternConv`` computes all
64 kernels in one batched product instead of 64 strided convolutions writing into a CUDA-only buffer;
``fc6``'s input size follows ``img_size``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import to_2tuple
from torch import nn

from snappix.models.classifier_utils import InputNorm, check_clip, sensor_lr_scales, sensor_param_names
from snappix.models.cnn3d import STAGES, WIDTHS, ConvClassifierHead, _pool_out, snappix_cnn_key_map
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD, IdentitySensor, build_sensor

__all__ = ["PatternConv", "SVC2D", "ANCHORS"]

ANCHORS = ("top_left", "center")


class PatternConv(nn.Module):
    """Shift-variant convolution: a separate ``k x k`` kernel (and bias) for every position of an
    ``sh x sw`` tile (TPAMI'23 "pattern convolution").

        out[b, o, y, x] = bias[y mod sh, x mod sw, o]
                          + sum_{c, i, j} weight[y mod sh, x mod sw, o, c, i, j] * xpad[b, c, y + i, x + j]

    i.e. at every pixel the 3x3 kernel of that pixel's tile position; stride 1, output size = input size.

    Implementation: ``F.unfold`` gathers the ``C * k * k`` neighbourhood of every pixel once, the pixels are
    grouped by tile position, and one ``einsum`` applies each position's ``(out, C*k*k)`` matrix, so the cost
    equals one ordinary convolution (not 64).

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: k (3 in SVC2D).
        tile_size: ``s`` or ``(sh, sw)``, the exposure tile (8).
        bias: learn a bias per tile position and output channel.
        anchor: where the window sits relative to the output pixel. ``"top_left"`` (default, TPAMI'23 /
            SnapPix): rows ``y .. y+k-1`` and columns ``x .. x+k-1``, zero padding ``k - 1`` at the bottom
            and right (SnapPix's checkpoints reproduce exactly). ``"center"``: the usual "same" window
            ``y - k//2 .. y + k//2`` with symmetric zero padding.

    Parameters:
        ``weight``: ``(sh, sw, C_out, C_in, k, k)``; ``bias``: ``(sh, sw, C_out)``. Init per position as
        the reference: kaiming-uniform with ``a = sqrt(2)`` (bound ``sqrt(6 / ((1 + a^2) fan_in))``),
        bias ``U(+-1/sqrt(fan_in))``, ``fan_in = C_in k^2``.

    Shapes:
        ``forward(x)``: float ``(B, C_in, H, W)`` with ``H % sh == W % sw == 0`` -> ``(B, C_out, H, W)``.

    Raises:
        ValueError: bad sizes / anchor; in forward a wrong rank, channel count, or H, W not multiples of the tile.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, tile_size: int | Sequence[int] = 8,
                 bias: bool = True, anchor: str = "top_left") -> None:
        super().__init__()
        sh, sw = to_2tuple(tile_size)
        if min(in_channels, out_channels, kernel_size, sh, sw) < 1:
            raise ValueError("in_channels, out_channels, kernel_size and tile_size must be >= 1")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.tile_size, self.anchor = (sh, sw), anchor
        self.weight = nn.Parameter(torch.empty(sh, sw, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(sh, sw, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.kernel_size ** 2
        a = math.sqrt(2.0)
        bound = math.sqrt(6.0 / ((1.0 + a * a) * fan_in))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def _padding(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        if self.anchor == "top_left":
            return (0, k - 1, 0, k - 1)
        before = k // 2
        return (before, k - 1 - before, before, k - 1 - before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatternConv expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        sh, sw = self.tile_size
        if h % sh or w % sw:
            raise ValueError(f"PatternConv: input {h}x{w} is not a multiple of the tile {sh}x{sw}")
        k = self.kernel_size
        cols = F.unfold(F.pad(x, self._padding()), k)  # (B, C*k*k, H*W), (c, i, j) order = weight's
        cols = cols.view(b, c * k * k, h // sh, sh, w // sw, sw)
        weight = self.weight.reshape(sh, sw, self.out_channels, c * k * k).to(x.dtype)
        out = torch.einsum("bnpyqx,yxon->bopyqx", cols, weight)  # (B, C_out, H/sh, sh, W/sw, sw)
        if self.bias is not None:
            out = out + self.bias.permute(2, 0, 1).to(x.dtype)[None, :, None, :, None, :]
        return out.reshape(b, self.out_channels, h, w)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"tile_size={self.tile_size}, anchor={self.anchor!r}, bias={self.bias is not None}")


class SVC2D(ConvClassifierHead, nn.Module):
    """SVC2D (TPAMI'23 ``C2DPt``) on one coded image; SnapPix's ``svc2d`` baseline (44.46 M parameters, 400 classes).

    Args:
        num_classes: K.
        num_frames: T of the raw clip (16).
        img_size: frame side (or ``(H, W)``), a multiple of the tile and of 16 (112).
        in_chans: C (1: grey).
        dropout: dropout before fc6 and before fc7 (0.5).
        sensor: a module ``(B, C, T, H, W) -> (B, C, 1, H, W)``; if None one is built with
            :func:`snappix.sensor.build_sensor` from ``coded_type`` (default ``"pami"``: the TPAMI'23
            learned pattern with sign binarisation, annealed noise and lr scale ``1/sigma``),
            ``pattern_path``, ``pattern_dir``, ``tile_size`` and ``sensor_seed``.
        tile_size: exposure tile = PatternConv tile (8).
        anchor: PatternConv window anchor (see :class:`PatternConv`).
        norm_mean, norm_std: normalisation of the coded image.

    Attributes:
        sensor: the sensor; ``lr_scales()`` returns its ``1/sigma`` lr scale (SnapPix ``pami_fix`` group).
        blocks: 5 stages (``nn.Sequential`` with SnapPix's layer names inside); stage k is layer ``k + 1``.

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in linear [0, 1] -> logits ``(B, K)``.

    Raises:
        ValueError: ``coded_type="none"``, geometry that does not fit the tile or pools to nothing; a wrong
            clip in forward.
    """

    def __init__(self, num_classes: int = 400, num_frames: int = 16, img_size: int | Sequence[int] = 112,
                 in_chans: int = 1, dropout: float = 0.5, sensor: nn.Module | None = None, coded_type: str = "pami",
                 pattern_path: str | None = None, pattern_dir: str | None = None,
                 tile_size: int | Sequence[int] = 8, sensor_seed: int = 0, sensor_noise=None, anchor: str = "top_left",
                 norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__()
        if sensor is None:
            sensor = build_sensor(coded_type, num_frames=num_frames, tile_size=tile_size, input_size=img_size,
                                  pattern_path=pattern_path, pattern_dir=pattern_dir, seed=sensor_seed,
                                  noise=sensor_noise)
        if isinstance(sensor, IdentitySensor):
            raise ValueError("SVC2D classifies a coded image; coded_type='none' is not supported "
                             "(use c3d or video_vit_*)")
        self.num_classes, self.num_frames, self.img_size, self.in_chans = num_classes, num_frames, img_size, in_chans
        self.coded_type = coded_type
        self.sensor = sensor
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        h, w = to_2tuple(img_size)
        stages, cin = [], in_chans
        for i, (convs, width) in enumerate(zip(STAGES, WIDTHS)):
            layers: list[tuple[str, nn.Module]] = []
            for j, name in enumerate(convs):
                conv = (PatternConv(cin, width, 3, tile_size, anchor=anchor) if i == 0
                        else nn.Conv2d(cin, width, kernel_size=3, stride=1, padding=1))
                layers.append((name, conv))
                cin = width
                if len(convs) == 1 or j == 1:
                    layers.append((f"bn{i + 1}", nn.BatchNorm2d(width)))
                layers.append((f"relu{name[4:]}", nn.ReLU(inplace=True)))
            pad = 1 if i == 4 else 0
            layers.append((f"pool{i + 1}", nn.MaxPool2d(2, 2, padding=pad)))
            h, w = _pool_out(h, 2, 2, pad), _pool_out(w, 2, 2, pad)
            stages.append(nn.Sequential(OrderedDict(layers)))
        if min(h, w) < 1:
            raise ValueError(f"SVC2D: {img_size} px frames pool to an empty map")
        self.blocks = nn.ModuleList(stages)
        self.num_features = cin * h * w  # 512 * 4 * 4 = 8192 at 112 px
        self.drop = nn.Dropout(dropout)
        self.fc6 = nn.Linear(self.num_features, 4096)
        self.relu6 = nn.ReLU(inplace=True)
        self.fc7 = nn.Linear(4096, num_classes)

    def no_weight_decay(self) -> set[str]:
        """The sensor's parameters (``sensor.logits``)."""
        return sensor_param_names(self.sensor)

    def lr_scales(self) -> dict[str, float]:
        """``{"sensor.logits": 1/sigma}`` for the TPAMI sensor (about 365.8 at 16 x 8 x 8 x 14 x 14), else ``{}``."""
        return sensor_lr_scales(self.sensor)

    def remap_state_dict(self, state: dict) -> dict:
        """SnapPix ``C2DPt`` keys -> ours: the stage names (:func:`~snappix.models.cnn3d.snappix_cnn_key_map`),
        and the 64 per-position convolutions ``conv1.weight{h}{w}.{weight,bias}`` stacked into
        ``blocks.0.conv1.weight`` ``(sh, sw, out, in, k, k)`` / ``blocks.0.conv1.bias`` ``(sh, sw, out)``.
        The sensor key (``coded_layer.weight``) is handled by the generic converter."""
        sh, sw = self.blocks[0].conv1.tile_size
        out, parts = {}, {"weight": {}, "bias": {}}
        for k, v in state.items():
            head, _, rest = k.partition(".")
            if head == "conv1" and rest.startswith("weight") and rest.count(".") == 1:
                pos, kind = rest.split(".")
                digits = pos[len("weight"):]
                if len(digits) == 2 and digits.isdigit():
                    parts[kind][(int(digits[0]), int(digits[1]))] = v
                    continue
            new = snappix_cnn_key_map(k)
            if new is not None:
                out[new] = v
        for kind, table in parts.items():
            if len(table) == sh * sw:
                out[f"blocks.0.conv1.{kind}"] = torch.stack(
                    [torch.stack([table[(i, j)] for j in range(sw)]) for i in range(sh)])
            else:
                out.update({f"conv1.weight{i}{j}.{kind}": v for (i, j), v in table.items()})  # left as unexpected
        return out

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> coded image -> flattened stage-4 features ``(B, 8192)`` (before dropout / fc6)."""
        check_clip(video, self.in_chans, self.num_frames, self.img_size, "SVC2D")
        coded = self.sensor(video)
        if coded.dim() != 5 or coded.shape[2] != 1:
            raise ValueError(f"SVC2D: the sensor must return (B, C, 1, H, W), got {tuple(coded.shape)}")
        x = self.input_norm(coded[:, :, 0])
        for stage in self.blocks:
            x = stage(x)
        return x.flatten(1)

