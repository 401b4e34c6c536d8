"""Decorrelation ("efficient coding") objective for exposure patterns (SnapPix, DAC'25; ``docs/methods/snappix.md`` §2).

Each ``sh x sw`` tile of a coded image is one sample of a ``D = sh * sw``-dimensional random vector:
the D coded-pixel positions of a tile are the variables. Tiles from every position, every clip and
every channel are pooled into ``N`` rows. With the rows centred per column,

    C = X^T X / (N - 1),   sigma_i = sqrt(C_ii + eps),   R_ij = C_ij / (sigma_i sigma_j),

the training loss is the mean of ``R_ij^2`` over the ``D (D - 1)`` off-diagonal entries (SnapPix's
MSE-to-zero) and the reported metric is the mean of ``|R_ij|`` over the same entries. Before this the
coded image is normalised with ``(Y - 0.2277) / 0.2425`` as SnapPix does (affine: no effect on R,
kept so the ``eps`` acts on the same scale). With ``patch_norm`` (SnapPix ``--patch_norm_coded``) the
mean over each tile of the *normalised long-exposure image* (mean over the T frames, no gradient) is
subtracted from all pixels of that tile first; this removes the tile's shared brightness (DC), which
otherwise dominates every correlation. SnapPix divides by nothing here (a comment says dividing by
the std made training unstable).

:class:`CorrelationAccumulator` computes exactly the same pooled R over a whole validation set in one
streaming pass (float64 sums), so the reported metric does not depend on the batch size.
"""
from __future__ import annotations

import torch

from snappix.data.constants import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["K710_SSV2_MEAN", "K710_SSV2_STD", "CORR_EPS", "tile_rows", "decorrelation_rows",
           "correlation_matrix", "off_diagonal", "decorrelation_loss", "mean_abs_off_diagonal",
           "CorrelationAccumulator"]

CORR_EPS = 1e-6           # added to the variances before the square root (SnapPix)


def tile_rows(image: torch.Tensor, tile_size: int | tuple[int, int] = 8) -> torch.Tensor:
    """Split images into tiles, one row per tile.

    Args:
        image: ``(B, C, 1, H, W)`` (a coded image from the sensor), ``(B, C, H, W)`` or ``(B, H, W)``.
        tile_size: ``s`` or ``(sh, sw)``; ``H``, ``W`` must be divisible by it.

    Returns:
        ``(N, sh * sw)`` with ``N = B * C * (H / sh) * (W / sw)``; row = one tile, columns in row-major
        order of the position inside the tile (column ``i * sw + j`` is tile pixel ``(i, j)``).

    Raises:
        ValueError: bad rank, a time axis other than 1, or a size not divisible by the tile.
    """
    sh, sw = (tile_size, tile_size) if isinstance(tile_size, int) else tile_size
    if image.dim() == 5:
        if image.shape[2] != 1:
            raise ValueError(f"expected a coded image (B, C, 1, H, W), got {tuple(image.shape)}")
        image = image[:, :, 0]
    elif image.dim() == 3:
        image = image[:, None]
    elif image.dim() != 4:
        raise ValueError(f"expected (B, C, 1, H, W), (B, C, H, W) or (B, H, W), got {tuple(image.shape)}")
    b, c, h, w = image.shape
    if h % sh or w % sw:
        raise ValueError(f"image size {h}x{w} is not divisible by the tile size {sh}x{sw}")
    t = image.reshape(b, c, h // sh, sh, w // sw, sw).permute(0, 1, 2, 4, 3, 5)
    return t.reshape(-1, sh * sw)


def decorrelation_rows(coded: torch.Tensor, clip: torch.Tensor | None = None, tile_size: int | tuple[int, int] = 8,
                       patch_norm: bool = True, mean: float = K710_SSV2_MEAN,
                       std: float = K710_SSV2_STD) -> torch.Tensor:
    """Sample rows for the correlation: normalised coded tiles, optionally minus the tile's long-exposure mean.

    Args:
        coded: coded image ``(B, C, 1, H, W)`` in [0, 1] (output of the sensor).
        clip: the raw clip ``(B, C, T, H, W)`` in [0, 1]; required when ``patch_norm``.
        tile_size: the pattern tile ``s`` or ``(sh, sw)``.
        patch_norm: subtract, from every pixel of a tile, the mean over that tile of the long-exposure image
            ``(mean_t clip - mean) / std`` (computed without gradient); SnapPix ``--patch_norm_coded``.
        mean, std: SnapPix's normalisation constants (affine; R does not depend on them).

    Returns:
        ``(N, sh * sw)`` rows (same dtype as ``coded``), differentiable with respect to ``coded``.

    Raises:
        ValueError: ``patch_norm`` without ``clip``, or shapes that do not match.
    """
    rows = tile_rows((coded - mean) / std, tile_size)
    if patch_norm:
        if clip is None:
            raise ValueError("patch_norm needs the raw clip (B, C, T, H, W) for the long-exposure tile means")
        if clip.dim() != 5 or clip.shape[0] != coded.shape[0] or clip.shape[-2:] != coded.shape[-2:]:
            raise ValueError(f"clip {tuple(clip.shape)} does not match the coded image {tuple(coded.shape)}")
        with torch.no_grad():
            long = (clip.mean(dim=2, keepdim=True) - mean) / std
            long_tile_mean = tile_rows(long, tile_size).mean(dim=1, keepdim=True)
        rows = rows - long_tile_mean.to(rows.dtype)
    return rows


def correlation_matrix(rows: torch.Tensor, eps: float = CORR_EPS) -> torch.Tensor:
    """Pearson correlation matrix of the columns of ``rows`` (SnapPix's formula, see module docstring).

    Args:
        rows: ``(N, D)`` samples, ``N >= 2``.
        eps: added to the variances before the square root.

    Returns:
        ``(D, D)`` correlation matrix (diagonal ``C_ii / (C_ii + eps)``, about 1), differentiable.

    Raises:
        ValueError: fewer than 2 rows or not 2-D.
    """
    if rows.dim() != 2 or rows.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) samples, got {tuple(rows.shape)}")
    x = rows - rows.mean(dim=0, keepdim=True)
    cov = x.T @ x / (x.shape[0] - 1)
    sigma = (cov.diagonal() + eps).sqrt()
    return cov / (sigma[:, None] * sigma[None, :])


def off_diagonal(r: torch.Tensor) -> torch.Tensor:
    """The ``D (D - 1)`` off-diagonal entries of a square ``(D, D)`` matrix, as a flat tensor."""
    d = r.shape[0]
    return r.flatten()[1:].view(d - 1, d + 1)[:, :-1].flatten()


def decorrelation_loss(r: torch.Tensor) -> torch.Tensor:
    """Training loss: mean of squared off-diagonal correlations, a scalar in [0, 1] (SnapPix's MSE to 0)."""
    return off_diagonal(r).pow(2).mean()


def mean_abs_off_diagonal(r: torch.Tensor) -> torch.Tensor:
    """Reported metric: mean ``|R_ij|`` over ``i != j``, a scalar in [0, 1] (SnapPix's L1 validation loss)."""
    return off_diagonal(r).abs().mean()


class CorrelationAccumulator:
    """Pooled correlation over many batches of rows, exact and independent of the batch split.

    Keeps ``N``, ``sum x`` and ``sum x x^T`` in float64 on the device of the first batch (the rows are
    normalised and tile-centred values of order 1, so float64 raw moments lose nothing measurable).

    Usage::

        acc = CorrelationAccumulator()
        for batch: acc.update(decorrelation_rows(sensor(clip), clip))
        r = acc.correlation()          # (D, D) float64
        metric = float(mean_abs_off_diagonal(r))
    """

    def __init__(self, eps: float = CORR_EPS) -> None:
        self.eps = eps
        self.n = 0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, rows: torch.Tensor) -> None:
        """Add ``(N_i, D)`` rows (any float dtype)."""
        x = rows.detach().double()
        if self.sum is None:
            self.sum = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
            self.outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        self.outer += x.T @ x
        self.sum += x.sum(dim=0)
        self.n += x.shape[0]

    def correlation(self) -> torch.Tensor:
        """The pooled ``(D, D)`` correlation matrix (float64).

        Raises:
            ValueError: fewer than 2 rows seen.
        """
        if self.n < 2 or self.sum is None or self.outer is None:
            raise ValueError(f"need at least 2 rows, got {self.n}")
        mean = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mean, mean)) / (self.n - 1)
        sigma = (cov.diagonal() + self.eps).sqrt()
        return cov / (sigma[:, None] * sigma[None, :])
