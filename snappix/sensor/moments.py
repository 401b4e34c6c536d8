"""Exact decorrelation objective from second moments of the clip tiles (our addition to SnapPix, docs/methods/snappix.md §2).

For a tiled pattern the normalised coded pixel ``p`` of a tile is linear in that tile's clip values:
with ``u = (x - 0.2277) / 0.2425`` (per time slot ``t`` and tile pixel ``p``), ``U`` the tile mean of the
normalised long exposure (mean of ``u`` over the T x D values of the tile) and ``W = M / denom``
(``denom`` = exposure count, or T),

    z_p = sum_t W[t, p] * (u[t, p] - U) + beta_p * U + const,
    beta_p = sum_t W[t, p] - 1 with ``patch_norm`` (0 for the SnapPix exposure-count normalisation), 0 without.

(without ``patch_norm`` the vector holds ``u`` itself instead of ``u - U``). So the covariance of the
D coded pixels is ``A^T S A`` with ``S`` the covariance of the ``T * D + 1`` vector
``[u - U (or u), U]`` over all tiles, and ``A`` built from the mask. :class:`TileMoments` accumulates
``S`` once over the training clips; afterwards the **exact** pooled correlation over *all* of those
clips (the quantity :func:`snappix.sensor.decorrelation.correlation_matrix` estimates on one
mini-batch) costs two passes over a ``(T * D, T * D)`` matrix (about 1 M multiply-adds for 16 x 8 x 8) per step,
independent of the number of clips, and is differentiable in the mask (so the STE applies).

Limits: a grey pattern (``P = 1``; the input channels are pooled as extra tiles), no sensor noise, and
``T * D`` small enough for a ``(T * D + 1)^2`` float64 matrix (16 x 8 x 8: 8 MB).
"""
from __future__ import annotations

import torch

from snappix.sensor.decorrelation import CORR_EPS, K710_SSV2_MEAN, K710_SSV2_STD, tile_rows

__all__ = ["MAX_MOMENT_DIM", "SYMMETRIES", "symmetry_permutations", "TileMoments"]

MAX_MOMENT_DIM = 8192  # largest T * sh * sw accepted (a 8193^2 float64 matrix is 537 MB)
#: ``symmetry`` names of :class:`TileMoments` -> number of transforms averaged over
SYMMETRIES = {"none": 1, "flip": 2, "dihedral": 8, "dihedral_time": 16}


def symmetry_permutations(symmetry: str, num_frames: int, tile_size: tuple[int, int]) -> list[torch.Tensor]:
    """Index permutations of the ``T * sh * sw + 1`` tile vector for each transform of a symmetry group.

    A clip transform that maps tiles onto tiles (a horizontal flip, a rotation by 90 degrees or a transpose of
    an image made of whole tiles; a reversal of time) only permutes the entries ``(t, y, x)`` of every tile
    vector (all tiles are pooled, so where a tile lands does not matter) and leaves the tile mean ``U`` (last
    entry) unchanged. Averaging the second moments over the group is therefore *exactly* training on every
    transformed copy of every clip (data augmentation at no cost).

    Args:
        symmetry: ``"none"``, ``"flip"`` (left-right mirror), ``"dihedral"`` (the 8 rotations / mirrors of a
            square tile) or ``"dihedral_time"`` (those, each also with time reversed: 16).
        num_frames, tile_size: T and ``(sh, sw)``.

    Returns:
        ``len == SYMMETRIES[symmetry]`` int64 tensors of length ``T * sh * sw + 1`` (the identity first).

    Raises:
        ValueError: an unknown name, or ``"dihedral*"`` with a non-square tile.
    """
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}; valid: {', '.join(SYMMETRIES)}")
    sh, sw = tile_size
    if symmetry.startswith("dihedral") and sh != sw:
        raise ValueError(f"symmetry {symmetry!r} needs a square tile, got {sh}x{sw}")
    idx = torch.arange(num_frames * sh * sw).reshape(num_frames, sh, sw)
    ops = [idx] if symmetry == "none" else [idx, idx.flip(2)]
    if symmetry.startswith("dihedral"):
        ops = [torch.rot90(base, k, dims=(1, 2)) for base in (idx, idx.flip(2)) for k in range(4)]
    if symmetry == "dihedral_time":
        ops = ops + [o.flip(0) for o in ops]
    tail = torch.tensor([num_frames * sh * sw])
    return [torch.cat([o.reshape(-1), tail]) for o in ops]


class TileMoments:
    """Running second moments of the per-tile vectors ``[u - U, U]`` of clips (see module docstring).

    Args:
        num_frames: T.
        tile_size: ``s`` or ``(sh, sw)`` of the pattern.
        patch_norm: SnapPix ``--patch_norm_coded`` (subtract the tile's long-exposure mean).
        mean, std: SnapPix's normalisation constants.
        device: where the float64 sums live (default: the device of the first clip).
        symmetry: average the moments over a group of clip transforms (:func:`symmetry_permutations`;
            ``"none"`` = SnapPix). Only :meth:`covariance` and what uses it see the average; the stored
            sums stay those of the clips as given.

    Raises:
        ValueError: ``T * sh * sw`` above :data:`MAX_MOMENT_DIM`; a bad ``symmetry``.
    """

    def __init__(self, num_frames: int = 16, tile_size: int | tuple[int, int] = 8, patch_norm: bool = True,
                 mean: float = K710_SSV2_MEAN, std: float = K710_SSV2_STD, device: torch.device | str | None = None,
                 symmetry: str = "none"):
        sh, sw = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(tile_size)
        self.num_frames, self.tile_size, self.patch_norm = num_frames, (sh, sw), patch_norm
        self.symmetry = symmetry
        self._perms = symmetry_permutations(symmetry, num_frames, (sh, sw))
        self.mean, self.std = mean, std
        self.dim = num_frames * sh * sw + 1
        if self.dim - 1 > MAX_MOMENT_DIM:
            raise ValueError(f"T * sh * sw = {self.dim - 1} is too large for moment accumulation "
                             f"(max {MAX_MOMENT_DIM}); use the mini-batch objective")
        self.device = torch.device(device) if device is not None else None
        self.weight = 0.0
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None
        self._cov: torch.Tensor | None = None

    def _alloc(self, device: torch.device) -> None:
        self.device = device
        self.sum = torch.zeros(self.dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=device)

    def vectors(self, clip: torch.Tensor) -> torch.Tensor:
        """Per-tile vectors of a clip.

        Args:
            clip: ``(B, C, T, H, W)`` float in [0, 1] (linear intensity); ``H, W`` divisible by the tile.

        Returns:
            ``(B * C * H/sh * W/sw, T * D + 1)`` float32: columns ``t * D + p`` hold ``u[t, p] - U``
            (or ``u`` without ``patch_norm``), the last column holds ``U``.
        """
        b, c, t, h, w = clip.shape
        if t != self.num_frames:
            raise ValueError(f"TileMoments built for T={self.num_frames}, got a clip with T={t}")
        sh, sw = self.tile_size
        u = (clip.float() - self.mean) / self.std
        # (B, C, T, H, W) -> rows (N, T * D): per tile, the T time slots of its D pixels
        rows = tile_rows(u.reshape(b * c, t, h, w), (sh, sw))  # (B*C*T*nt, D), time used as the channel axis
        nt = (h // sh) * (w // sw)
        rows = rows.reshape(b * c, t, nt, sh * sw).permute(0, 2, 1, 3).reshape(b * c * nt, t * sh * sw)
        long_mean = rows.mean(dim=1, keepdim=True)
        if self.patch_norm:
            rows = rows - long_mean
        return torch.cat([rows, long_mean], dim=1)

    @torch.no_grad()
    def update(self, clip: torch.Tensor, weight: float = 1.0) -> None:
        """Add every tile of ``clip`` ``(B, C, T, H, W)`` with the given per-tile weight (> 0)."""
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        v = self.vectors(clip)
        if self.sum is None:
            self._alloc(self.device or v.device)
        v = v.to(self.device)
        self.outer += weight * (v.T @ v).double()
        self.sum += weight * v.sum(dim=0).double()
        self.weight += weight * v.shape[0]
        self._cov = None

    @torch.no_grad()
    def add(self, other: "TileMoments", weight: float = 1.0) -> "TileMoments":
        """Add another accumulator's clips, each tile counted ``weight`` (> 0) times; returns ``self``.

        Moments are sums, so this equals having called :meth:`update` on ``other``'s clips here (with
        ``weight`` times their weights): per-source moments can be mixed in any proportion without
        reading the clips again.

        Raises:
            ValueError: ``weight <= 0``, or ``other`` differs in T, tile size or ``patch_norm``.
        """
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        if (other.dim, other.patch_norm, other.tile_size) != (self.dim, self.patch_norm, self.tile_size):
            raise ValueError("cannot add TileMoments of another T, tile size or patch_norm")
        if other.sum is None:
            return self
        if self.sum is None:
            self._alloc(self.device or other.sum.device)
        self.outer += weight * other.outer.to(self.device)
        self.sum += weight * other.sum.to(self.device)
        self.weight += weight * other.weight
        self._cov = None
        return self

    def covariance(self) -> torch.Tensor:
        """``(T * D + 1, T * D + 1)`` float64 covariance of the accumulated vectors (``n - 1`` normalisation),
        averaged over the ``symmetry`` group.

        Raises:
            ValueError: fewer than 2 (weighted) tiles.
        """
        if self.sum is None or self.weight < 2:
            raise ValueError(f"need at least 2 tiles, have {self.weight}")
        if self._cov is None:
            total, outer, n = self.sum, self.outer, self.weight
            if len(self._perms) > 1:  # the raw sums over every transformed copy of every clip
                perms = [p.to(total.device) for p in self._perms]
                total = sum(total[p] for p in perms)
                outer = sum(outer[p][:, p] for p in perms)
                n = n * len(perms)
            mean = total / n
            self._cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
        return self._cov

    def correlation(self, mask: torch.Tensor, normalize: str = "exposed", eps: float = CORR_EPS) -> torch.Tensor:
        """Exact pooled correlation of the D coded pixels of a tile over all accumulated clips.

        Args:
            mask: binary pattern ``(T, sh, sw)`` or ``(1, T, sh, sw)`` (e.g. ``CodedExposure.mask()``, with
                its STE graph); float.
            normalize: ``"exposed"`` (per-pixel exposure count) or ``"frames"`` (by T), as the layer.
            eps: added to the variances (SnapPix's 1e-6).

        Returns:
            ``(D, D)`` float64 correlation matrix, differentiable with respect to ``mask``; equal (up to
            float rounding) to ``correlation_matrix(decorrelation_rows(layer(clips), clips))`` over the
            concatenation of all accumulated clips.
        """
        if mask.dim() == 4:
            if mask.shape[0] != 1:
                raise ValueError("TileMoments supports grey patterns (P = 1) only")
            mask = mask[0]
        t, sh, sw = mask.shape
        if t != self.num_frames or (sh, sw) != self.tile_size:
            raise ValueError(f"mask {tuple(mask.shape)} does not match T={self.num_frames}, tile={self.tile_size}")
        d = sh * sw
        cov = self.covariance()
        m = mask.reshape(t, d).to(cov)
        denom = m.sum(dim=0).clamp(min=1.0) if normalize == "exposed" else torch.full_like(m[0], float(t))
        w = m / denom                                                    # (T, D)
        beta = (w.sum(dim=0) - 1.0) if self.patch_norm else torch.zeros_like(w[0])
        c_u_long = cov[:-1, -1].reshape(t, d)                            # Cov(u'[t, p], U)
        cross = (w * c_u_long).sum(dim=0)                                # sum_t W[t, p] Cov(u'[t, p], U)
        # c[p, q] = sum_{t, s} W[t, p] K[(t, p), (s, q)] W[s, q], using the block structure of A
        # (two broadcast-multiply-reduce passes over K; much faster than a generic einsum path)
        kw = (cov[:-1, :-1].reshape(t * d, t, d) * w).sum(dim=1)          # [(t, p), q]
        c = (kw.reshape(t, d, d) * w[:, :, None]).sum(dim=0)             # [p, q]
        c = c + cross[:, None] * beta[None, :] + beta[:, None] * cross[None, :] + cov[-1, -1] * torch.outer(beta, beta)
        sigma = (c.diagonal() + eps).sqrt()
        return c / (sigma[:, None] * sigma[None, :])

    @torch.no_grad()
    def flip_losses(self, pattern: torch.Tensor, normalize: str = "exposed", loss: str = "l1",
                    eps: float = CORR_EPS) -> tuple[float, torch.Tensor]:
        """The objective now and after flipping each single entry of a binary pattern, all at once.

        Flipping slot ``t`` of tile pixel ``p`` changes only column ``p`` of ``A``, hence only row/column
        ``p`` of the covariance. With ``SA = S A`` computed once, the new row ``p`` for every one of the
        T candidate flips of pixel ``p`` costs a ``(T, T) x (T, D)`` product, so all ``T * D`` candidates
        together cost about as much as one :meth:`correlation` call.

        Args:
            pattern: binary ``(T, sh, sw)`` or ``(1, T, sh, sw)``.
            normalize: as :meth:`correlation`.
            loss: ``"l1"`` (mean |off-diagonal r|) or ``"mse"`` (mean squared off-diagonal r).
            eps: as :meth:`correlation`.

        Returns:
            ``(loss_now, losses)``: the current objective and a float64 tensor shaped like ``pattern`` with the
            objective after flipping that entry (``inf`` where the flip would leave a pixel unexposed).
        """
        if loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {loss!r}")
        f = torch.abs if loss == "l1" else torch.square
        m = pattern[0] if pattern.dim() == 4 else pattern
        t, sh, sw = m.shape
        d = sh * sw
        cov = self.covariance()
        m = m.reshape(t, d).to(cov)

        def parts(mm: torch.Tensor):  # mm (..., T, D) -> W (..., T, D), beta (..., D)
            if normalize == "exposed":
                denom = mm.sum(dim=-2).clamp(min=1.0)
            else:
                denom = torch.full_like(mm[..., 0, :], float(t))
            w = mm / denom.unsqueeze(-2)
            beta = (w.sum(dim=-2) - 1.0) if self.patch_norm else torch.zeros_like(denom)
            return w, beta

        w, beta = parts(m)
        sa = (cov[:, :-1].reshape(t * d + 1, t, d) * w).sum(dim=1) + cov[:, -1:] * beta   # (TD+1, D) = S A
        sa3 = sa[:-1].reshape(t, d, d)                                                      # [t, p, q]
        c = (sa3 * w[:, :, None]).sum(dim=0) + beta[:, None] * sa[-1][None, :]              # [p, q]
        diag = c.diagonal().clone()
        r = c / ((diag + eps).sqrt()[:, None] * (diag + eps).sqrt()[None, :])
        off = ~torch.eye(d, dtype=torch.bool, device=cov.device)
        n_off = d * (d - 1)
        now = float(f(r[off]).sum() / n_off)

        # candidates: cand[p, k] = column p of the mask with slot k toggled -> (D, T(k), T(t))
        eye = torch.eye(t, dtype=cov.dtype, device=cov.device)
        col = m.T                                                                           # (D, T)
        cand = (col[:, None, :] + eye[None] - 2 * col[:, None, :] * eye[None]).transpose(1, 2)  # (D, T(t), T(k))
        wc, bc = parts(cand)                                                                # (D, T, T), (D, T)
        wc = wc.transpose(1, 2)                                                             # (D, k, t)
        row = torch.einsum("pkt,tpq->pkq", wc, sa3) + bc[:, :, None] * sa[-1][None, None, :]  # new c[p, q], q != p
        idx = torch.arange(t, dtype=torch.long, device=cov.device)[:, None] * d + torch.arange(d, device=cov.device)
        rows_p = torch.cat([idx.T, torch.full((d, 1), t * d, dtype=torch.long, device=cov.device)], dim=1)  # (D, T+1)
        block = cov[rows_p[:, :, None], rows_p[:, None, :]]                                 # (D, T+1, T+1)
        a = torch.cat([wc, bc[:, :, None]], dim=2)                                          # (D, k, T+1)
        new_diag = torch.einsum("pki,pij,pkj->pk", a, block, a)                             # (D, k)
        new_r = row / ((new_diag + eps).sqrt()[:, :, None] * (diag + eps).sqrt()[None, None, :])
        keep = off.to(cov.dtype)                                                            # zero at q == p
        delta = ((f(new_r) - f(r)[:, None, :]) * keep[:, None, :]).sum(dim=2) * 2.0 / n_off  # (D, k)
        losses = now + delta.T                                                              # (T, D)
        unexposed = (m.sum(dim=0) <= 1)[None, :] & (m > 0.5)
        losses = losses.masked_fill(unexposed, float("inf"))
        return now, losses.reshape(pattern.shape)

    def state_dict(self) -> dict:
        """Plain tensors and numbers (``torch.load(weights_only=True)``-safe) for checkpoints."""
        return {"weight": self.weight, "sum": self.sum, "outer": self.outer, "dim": self.dim,
                "patch_norm": self.patch_norm, "num_frames": self.num_frames, "tile_size": list(self.tile_size)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (must match T, tile size and patch_norm)."""
        if state["dim"] != self.dim or bool(state["patch_norm"]) != self.patch_norm:
            raise ValueError("moment state does not match this TileMoments (T, tile size or patch_norm differ)")
        self.weight = float(state["weight"])
        self.sum, self.outer = state["sum"], state["outer"]
        if self.sum is not None:
            self.device = self.sum.device
        self._cov = None
