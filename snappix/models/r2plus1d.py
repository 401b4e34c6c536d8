"""The R(2+1)D stages of Saccade-VSSL's backbone (Tran et al., "A Closer Look at Spatiotemporal Convolutions
for Action Recognition", CVPR 2018, https://arxiv.org/abs/1711.11248, §3.5; as used by VCOP and by
Saccade-VSSL, Lai et al., IEEE TCSVT 2023).

Every ``t x d x d`` convolution from ``C_in`` to ``C_out`` channels is factorised into a ``1 x d x d`` spatial
convolution to ``M`` channels, BatchNorm, ReLU, and a ``t x 1 x 1`` temporal convolution to ``C_out``, with

    M = floor(t * d^2 * C_in * C_out / (d^2 * C_in + t * C_out))

so that the pair has about as many weights as the full 3-D kernel. The width is computed **per
convolution** from that convolution's own ``C_in`` / ``C_out``: the second convolution of a block
(``C_out -> C_out``), the stem (``3 -> 64`` with a ``3 x 7 x 7`` kernel: M = 83) and the strided ``1 x 1 x 1``
shortcut (factorised as well) each get their own M. torchvision's ``r2plus1d_18`` instead reuses the first
convolution's M for the second one and has a fixed 45-channel stem, which with one block per stage gives
12.49 M parameters against this layout's 14.37 M.

All convolutions are bias-free; weights use torchvision's video-ResNet initialisation (Kaiming normal,
fan-out, BatchNorm weight 1 and bias 0).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FactorisedConv3d", "R2Plus1DBlock", "r2plus1d_stages", "intermediate_width"]


def intermediate_width(cin: int, cout: int, kernel: tuple[int, int, int]) -> int:
    """``M = floor(t d_h d_w C_in C_out / (d_h d_w C_in + t C_out))`` for a ``(t, d_h, d_w)`` kernel (int >= 1)."""
    t, kh, kw = kernel
    return max(1, (t * kh * kw * cin * cout) // (kh * kw * cin + t * cout))


class FactorisedConv3d(nn.Module):
    """Spatial ``1 x k x k`` conv -> BatchNorm -> ReLU -> temporal ``t x 1 x 1`` conv.

    Behaves like ``nn.Conv3d(cin, cout, kernel, stride, padding, bias=False)`` on ``(B, C_in, T, H, W)`` float
    input: the spatial conv carries the spatial stride / padding, the temporal conv the temporal ones. The
    output is ``(B, C_out, T', H', W')`` with the usual convolution arithmetic. No BatchNorm follows the
    temporal convolution (the block adds it).
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
                 padding: tuple[int, int, int] = (0, 0, 0)) -> None:
        super().__init__()
        mid = intermediate_width(cin, cout, kernel)
        self.mid_channels = mid
        self.spatial = nn.Conv3d(cin, mid, (1, kernel[1], kernel[2]), stride=(1, stride[1], stride[2]),
                                 padding=(0, padding[1], padding[2]), bias=False)
        self.bn = nn.BatchNorm3d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.temporal = nn.Conv3d(mid, cout, (kernel[0], 1, 1), stride=(stride[0], 1, 1),
                                  padding=(padding[0], 0, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.relu(self.bn(self.spatial(x))))


class R2Plus1DBlock(nn.Module):
    """Basic residual block with factorised 3 x 3 x 3 convolutions:
    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    With ``downsample`` the first convolution has stride 2 in time and space and the shortcut is a factorised
    ``1 x 1 x 1`` stride-2 convolution followed by BatchNorm; otherwise the shortcut is the identity
    (``cin`` must equal ``cout``).

    Raises:
        ValueError: ``cin != cout`` without ``downsample``.
    """

    def __init__(self, cin: int, cout: int, downsample: bool = False) -> None:
        super().__init__()
        if not downsample and cin != cout:
            raise ValueError(f"a block without downsampling keeps the width, got {cin} -> {cout}")
        stride = (2, 2, 2) if downsample else (1, 1, 1)
        self.conv1 = FactorisedConv3d(cin, cout, (3, 3, 3), stride, (1, 1, 1))
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = FactorisedConv3d(cout, cout, (3, 3, 3), (1, 1, 1), (1, 1, 1))
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(FactorisedConv3d(cin, cout, (1, 1, 1), (2, 2, 2)), nn.BatchNorm3d(cout))
                           if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def r2plus1d_stages(in_chans: int = 3, widths: tuple[int, ...] = (64, 64, 128, 256, 512),
                    layers: tuple[int, ...] = (1, 1, 1, 1)) -> nn.ModuleList:
    """The five stages ``[stem, layer1, layer2, layer3, layer4]`` (the paper's conv1 .. conv5).

    * stem: factorised ``3 x 7 x 7`` conv, stride ``(1, 2, 2)``, padding ``(1, 3, 3)``, to ``widths[0]``; BN; ReLU;
    * layer k (k = 1..4): ``layers[k-1]`` :class:`R2Plus1DBlock` to ``widths[k]``; layers 2-4 downsample
      (stride 2 in time and space) in their first block.

    A ``(B, in_chans, 16, 112, 112)`` clip gives ``(B, widths[4], 2, 7, 7)`` after layer4.

    Raises:
        ValueError: ``widths`` not of length 5 or ``layers`` not of length 4.
    """
    if len(widths) != 5 or len(layers) != 4:
        raise ValueError(f"widths must have 5 entries and layers 4, got {widths} / {layers}")
    stem = nn.Sequential(FactorisedConv3d(in_chans, widths[0], (3, 7, 7), (1, 2, 2), (1, 3, 3)),
                         nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
    stages = [stem]
    for k in range(4):
        cin, cout = widths[k], widths[k + 1]
        blocks = [R2Plus1DBlock(cin, cout, downsample=k > 0)]
        blocks += [R2Plus1DBlock(cout, cout) for _ in range(layers[k] - 1)]
        stages.append(nn.Sequential(*blocks))
    out = nn.ModuleList(stages)
    _init(out)
    return out
