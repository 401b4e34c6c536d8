"""C3D on the full grey clip (Tran et al., ICCV'15, as adapted by TPAMI'23 / SnapPix's baseline, DAC'25 §5.2).

Architecture (input ``(B, 1, 16, 112, 112)``; every conv 3x3x3, stride 1, padding 1, then ReLU)::

    stage 0  conv1 64,  BN            max-pool (1,2,2)             -> 64  x 16 x 56 x 56
    stage 1  conv2 128, BN            max-pool 2                    -> 128 x  8 x 28 x 28
    stage 2  conv3a 256, conv3b 256, BN   max-pool 2                -> 256 x  4 x 14 x 14
    stage 3  conv4a 512, conv4b 512, BN   max-pool 2                -> 512 x  2 x  7 x  7
    stage 4  conv5a 512, conv5b 512, BN   max-pool 2, padding (0,1,1) -> 512 x 1 x 4 x 4 = 8192
    dropout 0.5 -> fc6 8192 -> 4096, ReLU -> dropout 0.5 -> fc7 4096 -> num_classes

BatchNorm follows the first conv of stages 0-1 and the second conv of stages 2-4, as in SnapPix's
``coded_AR/models/c3d.py``. Differences from that code, on purpose:

* ``forward`` returns **logits**; SnapPix returned ``log_softmax`` (then fed to a soft-target
  cross-entropy, which applied a second log-softmax: harmless since log-softmax is idempotent, but
  the outputs were not logits). Our loss applies the log-softmax.
* SnapPix also defined a ``bn6 = BatchNorm2d(4096)`` it never used (8,192 parameters, which is why its
  log says 62.86 M; ours has 62.85 M). An unused parameter also forces DDP's
  ``find_unused_parameters=True``, so it is left out.
* ``fc6``'s input size is computed from ``num_frames`` / ``img_size`` (SnapPix hard-coded 16 and 64 frames).
* The clip is normalised inside the model with SnapPix's grey statistics, like every classifier here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from timm.layers import to_2tuple
from torch import nn

from snappix.models.classifier_utils import InputNorm, check_clip
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["C3D", "snappix_cnn_key_map"]


def _pool_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _conv(kind: str, cin: int, cout: int) -> nn.Module:
    conv = nn.Conv3d if kind == "3d" else nn.Conv2d
    return conv(cin, cout, kernel_size=3, stride=1, padding=1)


#: (stage, SnapPix module names in order): conv names, then the BatchNorm name
STAGES = (
    ("conv1",), ("conv2",), ("conv3a", "conv3b"), ("conv4a", "conv4b"), ("conv5a", "conv5b"),
)
WIDTHS = (64, 128, 256, 512, 512)


def snappix_cnn_key_map(key: str) -> str | None:
    """SnapPix C3D / C2DPt parameter name -> ours (``conv3a.weight`` -> ``blocks.2.conv3a.weight``,
    ``bn3.bias`` -> ``blocks.2.bn3.bias``, ``fc6``/``fc7`` unchanged); None for SnapPix's unused ``bn6``.
    Other keys are returned unchanged."""
    head, _, rest = key.partition(".")
    if head == "bn6":
        return None
    for stage, convs in enumerate(STAGES):
        if head in convs or head == f"bn{stage + 1}":
            return f"blocks.{stage}.{head}.{rest}"
    return key


class ConvClassifierHead:
    """The fc6 -> fc7 head and the layer count shared by C3D and SVC2D (SnapPix / TPAMI'23): needs ``blocks``
    (the conv stages), ``fc6``, ``relu6``, ``drop``, ``fc7`` and ``forward_features(video) -> (B, 8192)`` on
    the class that mixes it in."""

    @property
    def num_layers(self) -> int:
        """Number of conv stages (5)."""
        return len(self.blocks)

    def get_num_layers(self) -> int:
        """5: stage k is layer k + 1 for layer-wise lr decay (SnapPix trains both CNNs with layer decay 1.0)."""
        return len(self.blocks)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, 8192)`` -> dropout -> fc6 -> ReLU -> dropout -> fc7: logits ``(B, K)``."""
        return self.fc7(self.drop(self.relu6(self.fc6(self.drop(features)))))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` in [0, 1] -> class logits ``(B, K)`` (no log-softmax; the loss applies it)."""
        return self.forward_head(self.forward_features(video))


class C3D(ConvClassifierHead, nn.Module):
    """C3D classifier on the full clip; SnapPix's ``c3d`` baseline (62.85 M parameters with 400 classes).

    Args:
        num_classes: K.
        num_frames: T of the clip (16 in SnapPix; 8 x k for other lengths).
        img_size: frame side (or ``(H, W)``), a multiple of 16 (112 in SnapPix).
        in_chans: C (1: grey).
        dropout: dropout before fc6 and before fc7 (0.5).
        norm_mean, norm_std: input normalisation (see :class:`~snappix.models.classifier_utils.InputNorm`).

    Attributes:
        blocks: 5 conv stages (``nn.Sequential`` with SnapPix's layer names inside); for layer-wise lr
            decay stage k is layer ``k + 1`` and fc6 / fc7 are the top layer.
        sensor: None (the model sees ordinary video).

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in linear [0, 1] -> logits ``(B, K)``.

    Raises:
        ValueError: geometry that pools to an empty map; a clip of the wrong shape in forward.
    """

    def __init__(self, num_classes: int = 400, num_frames: int = 16, img_size: int | Sequence[int] = 112,
                 in_chans: int = 1, dropout: float = 0.5,
                 norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__()
        self.num_classes, self.num_frames, self.img_size, self.in_chans = num_classes, num_frames, img_size, in_chans
        self.sensor = None
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        t, (h, w) = num_frames, to_2tuple(img_size)
        stages, cin = [], in_chans
        for i, (convs, width) in enumerate(zip(STAGES, WIDTHS)):
            layers: list[tuple[str, nn.Module]] = []
            for j, name in enumerate(convs):
                layers.append((name, _conv("3d", cin, width)))
                cin = width
                if len(convs) == 1 or j == 1:  # BN after stage 0/1's conv and after the second conv of 2-4
                    layers.append((f"bn{i + 1}", nn.BatchNorm3d(width)))
                layers.append((f"relu{name[4:]}", nn.ReLU(inplace=True)))
            if i == 0:
                pool, t, h, w = nn.MaxPool3d((1, 2, 2)), t, h // 2, w // 2
            elif i == 4:
                pool = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
                t, h, w = _pool_out(t, 2, 2, 0), _pool_out(h, 2, 2, 1), _pool_out(w, 2, 2, 1)
            else:
                pool, t, h, w = nn.MaxPool3d(2, 2), t // 2, h // 2, w // 2
            layers.append((f"pool{i + 1}", pool))
            stages.append(nn.Sequential(OrderedDict(layers)))
        if min(t, h, w) < 1:
            raise ValueError(f"C3D: a {num_frames} x {img_size} clip pools to an empty map; use >= 16 frames "
                             f"and frames >= 16 px")
        self.blocks = nn.ModuleList(stages)
        self.num_features = cin * t * h * w  # 512 * 1 * 4 * 4 = 8192 for 16 x 112 x 112
        self.drop = nn.Dropout(dropout)
        self.fc6 = nn.Linear(self.num_features, 4096)
        self.relu6 = nn.ReLU(inplace=True)
        self.fc7 = nn.Linear(4096, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> set[str]:
        """No extra names (biases and BatchNorm are already 1-D, hence exempt)."""
        return set()

    def lr_scales(self) -> dict[str, float]:
        """No per-parameter lr scales."""
        return {}

    def remap_state_dict(self, state: dict) -> dict:
        """SnapPix C3D keys -> ours (:func:`snappix_cnn_key_map`); called by
        :func:`~snappix.methods.pretrained.load_pretrained`."""
        out = {}
        for k, v in state.items():
            new = snappix_cnn_key_map(k)
            if new is not None:
                out[new] = v
        return out

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> flattened stage-4 features ``(B, 8192)`` (before dropout / fc6)."""
        check_clip(video, self.in_chans, self.num_frames, self.img_size, "C3D")
        x = self.input_norm(video)
        for stage in self.blocks:
            x = stage(x)
        return x.flatten(1)
