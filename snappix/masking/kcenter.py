"""K-centered patch sampling: greedy k-center (farthest-point) selection of space-time patches.

Park et al., "K-centered Patch Sampling for Efficient Video Recognition", ECCV 2022 (``docs/methods/kcenter.md``).
Every patch is a point ``[normalised pixels || scaled (t, h, w)]``; the greedy k-center picks
``k`` points, each the one farthest (Euclidean) from the centres already chosen (Gonzalez 1985,
a 2-approximation of the k-center problem).

Unlike the reference code, this implementation

* keeps only the running minimum distance ``(B, N)`` and computes the distances to the *newest* centre
  at each step (memory O(B N), not the ``(B, N, N)`` matrix; time O(k N D));
* chooses the first centre either at random from a seeded ``torch.Generator`` or at a fixed position
  (the patch at the centre of the chunk's middle frame), so evaluation is deterministic;
* runs batched over clips on any device (CPU or GPU) under ``torch.no_grad``.

Options: ``time_division`` (independent greedy runs on contiguous frame chunks, ``k /
time_division`` points each), ``space_division`` (at most one patch per spatial cell of a ``sd x sd``
grid per chunk: choosing a patch removes its whole cell in every frame of the chunk), hybrid frames
kept whole (:func:`split_hybrid_frames`), temporal / spatial coefficients on the coordinates.

:func:`kcenter_greedy_pairwise` is the full-distance-matrix formulation of the reference code, kept as
the test oracle and the benchmark baseline.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["patch_coordinates", "patch_points", "kcenter_select", "kcenter_greedy_pairwise",
           "hybrid_frame_indices", "indices_to_mask", "FIRST_CENTER_MODES", "METHODS"]

#: how the first centre of each (clip, chunk) is chosen
FIRST_CENTER_MODES = ("random", "center")

_FAR = float("inf")


def patch_coordinates(t: int, h: int, w: int, patch_size: int = 16, rgb_range: float = 2.0,
                      temporal_coef: float = 1.0, spatial_coef: float = 1.0, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    """Scaled ``(t, h, w)`` coordinates of a ``t x h x w`` patch grid (``docs/methods/kcenter.md``).

    ``spatial_range = sqrt(P / 2) * rgb_range`` and ``temporal_range = sqrt(P) * rgb_range`` with
    ``P = patch_size`` and ``rgb_range`` the span of one normalised pixel value (2 for mean = std = 0.5);
    h and w are ``linspace(-r_s / 2, r_s / 2)``, t is ``linspace(-r_t / 2, r_t / 2)``, times
    ``spatial_coef`` / ``temporal_coef``.

    Returns:
        float ``(t, h, w, 3)`` holding ``(t, h, w)`` coordinates.
    """
    r_s = math.sqrt(patch_size / 2) * rgb_range * spatial_coef
    r_t = math.sqrt(patch_size) * rgb_range * temporal_coef
    ts = torch.linspace(-r_t / 2, r_t / 2, t, dtype=dtype, device=device) if t > 1 else torch.zeros(1, dtype=dtype,
                                                                                                      device=device)
    hs = torch.linspace(-r_s / 2, r_s / 2, h, dtype=dtype, device=device)
    ws = torch.linspace(-r_s / 2, r_s / 2, w, dtype=dtype, device=device)
    grid = torch.meshgrid(ts, hs, ws, indexing="ij")
    return torch.stack(grid, dim=-1)


def patch_points(patches: torch.Tensor, patch_size: int, rgb_range: float = 2.0, temporal_coef: float = 1.0,
                 spatial_coef: float = 1.0) -> torch.Tensor:
    """Append scaled coordinates to per-frame patch pixels: the k-center point cloud.

    Args:
        patches: float ``(B, T, H', W', C * p * p)`` normalised pixels of each ``p x p`` patch.
        patch_size, rgb_range, temporal_coef, spatial_coef: see :func:`patch_coordinates`.

    Returns:
        ``(B, T, H', W', C * p * p + 3)``, same dtype / device.
    """
    b, t, h, w, _ = patches.shape
    coords = patch_coordinates(t, h, w, patch_size, rgb_range, temporal_coef, spatial_coef, patches.dtype,
                               patches.device)
    return torch.cat([patches, coords.expand(b, -1, -1, -1, -1)], dim=-1)


def _check(points: torch.Tensor, k: int, time_division: int, space_division: int, grid: Sequence[int] | None):
    if points.dim() == 5:
        b, t, h, w, d = points.shape
    elif points.dim() == 3:
        if grid is None:
            grid = (points.shape[1], 1, 1)
        t, h, w = (int(g) for g in grid)
        b, n, d = points.shape
        if n != t * h * w:
            raise ValueError(f"points have N={n} but grid {tuple(grid)} has {t * h * w} patches")
    else:
        raise ValueError(f"points must be (B, T, H', W', D) or (B, N, D), got shape {tuple(points.shape)}")
    if time_division < 1 or t % time_division:
        raise ValueError(f"time_division {time_division} must divide the {t} frames")
    if k < 1 or k % time_division:
        raise ValueError(f"k={k} must be a positive multiple of time_division {time_division}")
    chunk_t = t // time_division
    k_chunk = k // time_division
    if k_chunk > chunk_t * h * w:
        raise ValueError(f"k={k} exceeds the {chunk_t * h * w} patches of each of the {time_division} chunks "
                         f"({k_chunk} requested per chunk)")
    if space_division < 1 or space_division > min(h, w):
        raise ValueError(f"space_division {space_division} must be in [1, min(H', W') = {min(h, w)}]")
    if space_division > 1 and k_chunk > space_division ** 2:
        raise ValueError(f"space_division {space_division} allows at most {space_division ** 2} patches per chunk "
                         f"(one per cell), but k / time_division = {k_chunk}")
    return b, t, h, w, d


def _cell_ids(h: int, w: int, space_division: int, device) -> torch.Tensor:
    """Spatial cell of every position of an ``h x w`` grid, ``(h * w,)`` int64 in ``[0, sd^2)``."""
    rows = torch.arange(h, device=device) * space_division // h
    cols = torch.arange(w, device=device) * space_division // w
    return (rows[:, None] * space_division + cols[None, :]).reshape(-1)


def _first_centers(bc: int, chunk_t: int, h: int, w: int, first: str | torch.Tensor, generator, device):
    n = chunk_t * h * w
    if isinstance(first, torch.Tensor):
        idx = first.to(device=device, dtype=torch.long).reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(bc)
        if idx.numel() != bc or bool(((idx < 0) | (idx >= n)).any()):
            raise ValueError(f"first centre indices must be {bc} values in [0, {n}), got {first.tolist()}")
        return idx.clone()
    if first == "center":  # the patch at the spatial centre of the chunk's middle frame
        return torch.full((bc,), (chunk_t // 2) * h * w + (h // 2) * w + w // 2, dtype=torch.long, device=device)
    if first == "random":
        return torch.randint(0, n, (bc,), generator=generator, device="cpu" if generator is None else
                             generator.device).to(device)
    raise ValueError(f"first must be one of {FIRST_CENTER_MODES} or an index tensor, got {first!r}")


def _greedy(x: torch.Tensor, k_chunk: int, cur: torch.Tensor, cells: torch.Tensor | None,
            dmat: torch.Tensor | None = None) -> torch.Tensor:
    """The greedy loop over rows ``x (g, n, d)`` from first centres ``cur (g,)``; ``(g, k_chunk)`` indices.

    Squared distances ``||x||^2 - 2 x.c + ||c||^2`` to the newest centre (or rows of ``dmat``); chosen
    points and their cells get -1 in the running minimum, so they are never chosen again.
    """
    g, n, _ = x.shape
    rows = torch.arange(g, device=x.device)
    chosen = torch.empty(g, k_chunk, dtype=torch.long, device=x.device)
    mind = torch.full((g, n), _FAR, dtype=x.dtype, device=x.device)
    sq = (x * x).sum(-1) if dmat is None else None
    for step in range(k_chunk):
        chosen[:, step] = cur
        if step == k_chunk - 1:
            break
        if dmat is not None:
            dist = dmat[rows, cur]
        elif g == 1:  # matrix-vector product: much faster than a batch-1 bmm on CPU
            dist = torch.mv(x[0], x[0, cur[0]]).mul_(-2.0).add_(sq[0]).add_(sq[0, cur[0]]).unsqueeze(0)
        else:
            dist = torch.baddbmm(sq.unsqueeze(2), x, x[rows, cur].unsqueeze(2), alpha=-2.0).squeeze(2)
            dist += sq[rows, cur].unsqueeze(1)
        torch.minimum(mind, dist, out=mind)
        mind[rows, cur] = -1.0
        if cells is not None:
            mind.masked_fill_(cells.unsqueeze(0) == cells[cur].unsqueeze(1), -1.0)
        cur = mind.argmax(dim=1)
    return chosen


#: on CPU, rows are processed in groups of about this many bytes so that each stays in the last-level
#: cache during its k sequential passes (about 10x faster than one pass over the whole batch per step)
CPU_GROUP_BYTES = 24 << 20

#: how the distances of a step are computed (see :func:`kcenter_select`)
METHODS = ("auto", "dense", "bounded")

#: ``method="auto"`` bounds on CPU from this many values per chunk (n * d) up; below it one dense pass per
#: step costs less than the bound's fixed per-step work (about 1.4 vs 4.7 ms for a 196-token coded tube mask)
BOUNDED_MIN_VALUES = 1 << 20


def _projection(x: torch.Tensor, rank: int) -> torch.Tensor:
    """An orthonormal basis ``(g, d, r)`` close to the top-``r`` right singular subspace of ``x (g, n, d)``.

    One power step of a randomized range finder (Halko et al. 2011) with a fixed-seed sketch, so the
    global RNG is untouched and the result is deterministic. Any orthonormal basis gives a valid lower
    bound; a good one makes it tight.
    """
    g, n, d = x.shape
    r = min(rank, d, n)
    sketch = torch.randn(d, r, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = torch.bmm(x.transpose(1, 2), x @ sketch.to(x.dtype).to(x.device))  # (g, d, r): x^T x sketch
    return torch.linalg.qr(z.double()).Q.to(x.dtype)


def _squared_norms(x: torch.Tensor, rows: int = 1024) -> torch.Tensor:
    """``||x||^2`` over the last dim of ``x (g, n, d)`` -> ``(g, n)``, ``rows`` points at a time (no
    ``(g, n, d)`` temporary)."""
    return torch.cat([(part * part).sum(-1) for part in x.split(rows, dim=1)], dim=1)


def _greedy_bounded(x: torch.Tensor, k_chunk: int, cur: torch.Tensor, cells: torch.Tensor | None,
                    rank: int = 32, dense_fraction: float = 0.2) -> torch.Tensor:
    """The greedy loop of :func:`_greedy` with exact distances computed only where they can matter.

    For an orthonormal ``V (d, r)``, ``||V^T (x - c)||^2 <= ||x - c||^2``; a point whose lower bound already
    exceeds its running minimum ``mind`` cannot lower it, so only the others (on real video about 1 %
    after the first steps) get the exact ``||x||^2 - 2 x.c + ||c||^2``. Steps where more than
    ``dense_fraction`` of the points are candidates are computed densely. Same result as :func:`_greedy`
    (the bound has a float-error margin); on data without low-rank structure (white noise) every step is
    dense, about 1.4x the cost of :func:`_greedy`. Extra memory O(n r).
    """
    g, n, _ = x.shape
    rows = torch.arange(g, device=x.device)
    chosen = torch.empty(g, k_chunk, dtype=torch.long, device=x.device)
    sq = _squared_norms(x)
    # projected points stored (g, r, n): the per-step bound is then a (1 x r) @ (r x n) product per clip,
    # several times faster than the (n x r) @ (r x 1) layout on CPU
    xpt = torch.bmm(_projection(x, rank).transpose(1, 2), x.transpose(1, 2))
    sqp = (xpt * xpt).sum(1)
    # margin for the rounding of the bound and of the distances (both well below it)
    tol = (1e-4 * (sq.amax(dim=1, keepdim=True) + 1.0)).to(x.dtype)
    mind = torch.full((g, n), _FAR, dtype=x.dtype, device=x.device)
    removed = -_FAR  # chosen points (and their cells) can never be candidates again
    for step in range(k_chunk):
        chosen[:, step] = cur
        if step == k_chunk - 1:
            break
        c, c_sq = x[rows, cur], sq[rows, cur]
        bound = torch.baddbmm(sqp.unsqueeze(1), xpt[rows, :, cur].unsqueeze(1), xpt, alpha=-2.0).squeeze(1)
        bound += sqp[rows, cur].unsqueeze(1)
        candidate = bound < mind + tol
        gi, ni = candidate.nonzero(as_tuple=True)
        if gi.numel() > dense_fraction * g * n:  # (1 x d) @ (d x n) on the transposed view: no copy, and
            # about 3x faster on CPU than the (n x d) @ (d x 1) batched product
            dist = torch.baddbmm(sq.unsqueeze(1), c.unsqueeze(1), x.transpose(1, 2), alpha=-2.0).squeeze(1)
            dist += c_sq.unsqueeze(1)
            torch.minimum(mind, dist, out=mind)
        elif gi.numel():
            # one (m x d) @ (d x g) product, then each candidate's own clip: cheaper than gathering c per row
            dots = (x[gi, ni] @ c.T).gather(1, gi.unsqueeze(1)).squeeze(1)
            dist = dots.mul_(-2.0).add_(sq[gi, ni]).add_(c_sq[gi])
            mind[gi, ni] = torch.minimum(mind[gi, ni], dist)
        mind[rows, cur] = removed
        if cells is not None:
            mind.masked_fill_(cells.unsqueeze(0) == cells[cur].unsqueeze(1), removed)
        cur = mind.argmax(dim=1)
    return chosen


@torch.no_grad()
def kcenter_select(points: torch.Tensor, k: int, time_division: int = 1, space_division: int = 1,
                   first: str | torch.Tensor = "random", generator: torch.Generator | None = None,
                   grid: Sequence[int] | None = None, sort: bool = False, method: str = "auto") -> torch.Tensor:
    """Greedy k-center selection with O(N) memory per clip (K-centered patch sampling, ECCV'22; docs/methods/kcenter.md).

    At each step every point's squared distance to its nearest chosen centre is updated with its
    distance to the newest centre only: ``mind <- min(mind, ||x - c_new||^2)`` (the same order as the
    Euclidean distance of the paper); chosen points (and, with ``space_division > 1``, every point of
    their spatial cell in the chunk) are excluded; the next centre is ``argmax(mind)`` (the lowest
    index on ties). On GPU all clips and chunks run in one batched loop; on CPU in cache-sized groups.

    Args:
        points: float ``(B, T, H', W', D)`` (or ``(B, N, D)`` with ``grid = (T, H', W')``), e.g. from
            :func:`patch_points`. Any device; computed in its dtype.
        k: patches to select per clip (a multiple of ``time_division``).
        time_division: contiguous frame chunks processed independently, ``k / time_division`` each.
        space_division: cells per side of the spatial grid; > 1 allows at most one patch per cell per chunk.
        first: ``"random"`` (uniform per clip and chunk, from ``generator``), ``"center"`` (the centre
            patch of the chunk's middle frame: deterministic), or an int64 tensor of chunk-local flat
            indices ``(B * time_division,)`` (or one value for all).
        generator: ``torch.Generator`` for ``first="random"`` (None: the global one).
        grid: ``(T, H', W')`` when ``points`` is ``(B, N, D)``.
        sort: return each chunk's indices in ascending order instead of selection order.
        method: ``"dense"``: every step computes the distance of every point to the newest centre (one
            batched matrix-vector product; on CPU in cache-sized groups); ``"bounded"``: a lower bound
            from a rank-32 projection skips the points whose minimum cannot change, exact distances for
            the rest (:func:`_greedy_bounded`; 4.5x faster than the full-distance-matrix greedy on
            real video at N = 29 x 196, k = 980, but 1.4x slower than dense on white noise, where the bound
            prunes nothing: ``benchmarks/bench_masking.py``); ``"auto"``: bounded on CPU for chunks of at least
            :data:`BOUNDED_MIN_VALUES` values (``n * D``), dense otherwise and on GPU (one kernel per step
            suits a GPU better than the data-dependent gather). All give the same selection.

    Returns:
        int64 ``(B, k)`` flat indices into ``T * H' * W'`` (``t * H' * W' + h * W' + w``), chunk by chunk,
        in selection order (or sorted); never repeated within a clip.

    Raises:
        ValueError: bad shapes, ``k`` larger than the patches (or cells) available, divisions that do
            not divide the grid, an unknown ``first`` or ``method``.
    """
    b, t, h, w, d = _check(points, k, time_division, space_division, grid)
    td, chunk_t, k_chunk = time_division, t // time_division, k // time_division
    n = chunk_t * h * w
    x = points.reshape(b * td, n, d)
    bc = b * td
    cur = _first_centers(bc, chunk_t, h, w, first, generator, x.device)
    cells = _cell_ids(h, w, space_division, x.device).repeat(chunk_t) if space_division > 1 else None
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        method = "bounded" if x.device.type == "cpu" and n * d >= BOUNDED_MIN_VALUES else "dense"
    if method == "bounded":
        chosen = _greedy_bounded(x, k_chunk, cur, cells)
    else:
        group = bc if x.device.type != "cpu" else max(1, CPU_GROUP_BYTES // (n * d * x.element_size()))
        chosen = torch.cat([_greedy(x[i:i + group], k_chunk, cur[i:i + group], cells)
                            for i in range(0, bc, group)])
    if sort:
        chosen = chosen.sort(dim=1).values
    offsets = (torch.arange(td, device=x.device) * n).repeat(b).unsqueeze(1)
    return (chosen + offsets).reshape(b, k)


@torch.no_grad()
def kcenter_greedy_pairwise(points: torch.Tensor, k: int, time_division: int = 1, space_division: int = 1,
                            first: str | torch.Tensor = "random", generator: torch.Generator | None = None,
                            grid: Sequence[int] | None = None, sort: bool = False) -> torch.Tensor:
    """Reference-code formulation: the full ``(B * td, n, n)`` squared-distance matrix, then the same greedy
    loop reading one row per step. Same arguments, result and tie rule as
    :func:`kcenter_select`; memory O(B n^2) (about 129 MB per clip at n = 29 x 196). Test oracle and
    benchmark baseline only.
    """
    b, t, h, w, d = _check(points, k, time_division, space_division, grid)
    td, chunk_t, k_chunk = time_division, t // time_division, k // time_division
    n = chunk_t * h * w
    x = points.reshape(b * td, n, d)
    bc = b * td
    device = x.device
    sq = (x * x).sum(-1)
    dmat = torch.baddbmm(sq.unsqueeze(2), x, x.transpose(1, 2), alpha=-2.0)
    dmat += sq.unsqueeze(1)
    cur = _first_centers(bc, chunk_t, h, w, first, generator, device)
    cells = _cell_ids(h, w, space_division, device).repeat(chunk_t) if space_division > 1 else None
    chosen = _greedy(x, k_chunk, cur, cells, dmat=dmat)
    if sort:
        chosen = chosen.sort(dim=1).values
    offsets = (torch.arange(td, device=device) * n).repeat(b).unsqueeze(1)
    return (chosen + offsets).reshape(b, k)


def hybrid_frame_indices(num_frames: int, num_hybrid: int) -> torch.Tensor:
    """Frames kept whole ("hybrid frames", ``docs/methods/kcenter.md``): ``linspace(0, T - 1, num_hybrid).long()``, e.g.
    ``{0, 15, 31}`` for 3 of 32. Returns int64 ``(num_hybrid,)`` (empty for 0).

    Raises:
        ValueError: ``num_hybrid`` not in ``[0, num_frames)``.
    """
    if not 0 <= num_hybrid < num_frames:
        raise ValueError(f"num_hybrid_frames must be in [0, {num_frames}), got {num_hybrid}")
    if num_hybrid == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.linspace(0, num_frames - 1, num_hybrid).long()


def indices_to_mask(indices: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Selected token indices ``(B, k)`` -> bool mask ``(B, num_tokens)`` with **True = hidden** (not selected),
    exactly ``num_tokens - k`` per row: k-center as the token selector of an encoder that takes masks
    (e.g. :class:`~snappix.models.vit.VideoViTEncoder`)."""
    mask = torch.ones(indices.shape[0], num_tokens, dtype=torch.bool, device=indices.device)
    mask.scatter_(1, indices, False)
    return mask
