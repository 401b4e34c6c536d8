"""Saliency-aware token masking (SaViMAE, ``docs/methods/savimae.md``), with the reference code's defects fixed.

Pipeline: frames -> grey, resized to the model input -> global-contrast saliency
``|I - mean(I)| / max|I - mean(I)|`` per frame (:func:`frame_saliency`) -> binarised at ``threshold`` and
max-pooled per ``p x p`` patch (:func:`patch_saliency`: a patch is salient if any pixel is) ->
aligned with the frames actually sampled and pooled over each tubelet (:func:`align_saliency`) ->
a mask with a fixed number of visible tokens (:class:`SaliencyMasking`).

Fixes of the reference (docs/methods/savimae.md): saliency comes from the sampled frames (not the video's first 8) and
is pooled over each tubelet and mapped through the training crop; ``--saliency_root`` is honoured and a
missing file raises :class:`MissingSaliencyError` (no "all salient" fallback); both masking
semantics keep the visible count fixed so batches stack.

Data-side generators here take the sampled clip: they set ``needs_clip = True`` and are called by
:class:`~snappix.data.datasets.VideoPretrainDataset` as ``gen(rng, clip=context)`` where ``context`` is
a dict with ``video`` (float ``(C, T, S, S)`` in [0, 1], the transformed clip), ``frame_indices``
(int ``(T,)``, indices into the video or frame folder), ``rel_path`` / ``path`` (the list row),
``crop`` (``(top, left, h, w)`` of the crop in source pixels, or None) and ``frame_size`` ``(H, W)``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from snappix.errors import UserError

from .grid import resolve_rng, token_grid

__all__ = ["SALIENCY_MASK_TYPES", "SAVI_SEMANTICS", "MissingSaliencyError", "frame_saliency", "patch_saliency",
           "tubelet_pool", "crop_patch_map", "align_saliency", "saliency_path", "load_patch_saliency",
           "SaliencyMasking", "PrecomputedSaliency", "OnlineSaliency", "SaliencyMaskGenerator",
           "build_saliency_mask_generator"]

#: masking types that need the sampled clip (``--mask_type``)
SALIENCY_MASK_TYPES = ("savi", "attention")
#: how ``salient_mask_ratio`` / ``nonsalient_mask_ratio`` are read (see :class:`SaliencyMasking`)
SAVI_SEMANTICS = ("per_group", "budget")

#: ITU-R 601-2 luma weights, as PIL's ``convert("L")``
_LUMA = (0.299, 0.587, 0.114)


class MissingSaliencyError(UserError, RuntimeError):
    """A precomputed saliency file is missing or unreadable (not an ``OSError``: the dataset must not
    replace the video by a substitute; the run stops)."""


def _grey_float(frames) -> torch.Tensor:
    """uint8 / float ``(T, H, W)`` or ``(T, H, W, C)`` (numpy or torch) -> float32 ``(T, 1, H, W)`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    x = x.float()
    if x.dim() == 4 and x.shape[-1] == 3:
        x = (x * torch.tensor(_LUMA)).sum(-1)
    elif x.dim() == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    elif x.dim() != 3:
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C) with C in (1, 3), got {tuple(x.shape)}")
    return (x / scale).unsqueeze(1)


def frame_saliency(frames, input_size: int | None = 224) -> torch.Tensor:
    """Global-contrast saliency of every frame (SaViMAE; ``docs/methods/savimae.md``), vectorised over frames.

    Args:
        frames: uint8 in [0, 255] or float in [0, 1]; ``(T, H, W, 3)`` RGB (grey by ITU-R 601 luma, as
            PIL's "L"), ``(T, H, W, 1)`` or ``(T, H, W)`` grey; numpy or torch.
        input_size: side of the square the frames are bilinearly resized to (antialiased, as PIL's
            bilinear), the model input size; None keeps the size.

    Returns:
        float32 ``(T, S, S)`` in [0, 1]: ``|I - mean(I)| / max|I - mean(I)|`` per frame; an all-constant
        frame gives zeros.

    Raises:
        ValueError: an unsupported shape.
    """
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    size = (input_size, input_size) if input_size is not None else None
    if x.dtype == torch.uint8 and x.dim() == 4 and x.shape[-1] == 3 and size is not None:
        # resize the uint8 RGB frames first (the fast channels-last path), then grey: both are linear, so
        # the order only changes rounding; about 3x faster than grey -> float -> resize
        x = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=True)
        x = torch.einsum("tchw,c->thw", x.float(), torch.tensor(_LUMA)).div_(255.0)
    else:
        x = _grey_float(x)
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x[:, 0]
    dev = (x - x.mean(dim=(1, 2), keepdim=True)).abs()
    peak = dev.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, dev / peak.clamp_min(1e-12), torch.zeros_like(dev))


def patch_saliency(saliency: torch.Tensor, patch_size: int, threshold: float = 0.5) -> torch.Tensor:
    """Binarise at ``threshold`` and max-pool each ``p x p`` patch (docs/methods/savimae.md): salient if any pixel is.

    Args:
        saliency: float ``(T, S, S)`` in [0, 1] (e.g. :func:`frame_saliency`).
        patch_size: p; must divide S.
        threshold: pixels with ``saliency >= threshold`` are salient.

    Returns:
        float32 ``(T, S / p, S / p)`` in {0, 1}.

    Raises:
        ValueError: ``p`` does not divide the frame size.
    """
    t, h, w = saliency.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the saliency size {h}x{w}")
    binary = (saliency >= threshold).float().unsqueeze(1)
    return F.max_pool2d(binary, patch_size).squeeze(1)


def tubelet_pool(patch_map: torch.Tensor | np.ndarray, tubelet_size: int, reduce: str = "max") -> torch.Tensor:
    """Pool per-frame patch saliency ``(T, h, w)`` over tubelets -> float32 ``(T / tubelet, h, w)``.

    ``reduce``: ``"max"`` (a token is salient if it is in any of its frames) or ``"mean"``.

    Raises:
        ValueError: ``tubelet_size`` does not divide T, or an unknown ``reduce``.
    """
    x = torch.as_tensor(patch_map).float()
    t = x.shape[0]
    if tubelet_size < 1 or t % tubelet_size:
        raise ValueError(f"tubelet_size {tubelet_size} must divide the {t} sampled frames")
    x = x.reshape(t // tubelet_size, tubelet_size, *x.shape[1:])
    if reduce == "max":
        return x.amax(dim=1)
    if reduce == "mean":
        return x.mean(dim=1)
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")


def crop_patch_map(patch_map: torch.Tensor, crop: Sequence[int], frame_size: Sequence[int],
                   out_hw: Sequence[int]) -> torch.Tensor:
    """Map a full-frame patch map through the training crop.

    The stored map ``(T, h, w)`` covers the whole ``H x W`` source frame (resized to the input square, as
    SaViMAE); the crop ``(top, left, ch, cw)`` (source pixels) is resized to the ``out_h x out_w`` token
    grid. Each output token takes the max over the stored cells its source rectangle overlaps.

    Returns:
        float32 ``(T, out_h, out_w)``.
    """
    top, left, ch, cw = (float(v) for v in crop)
    height, width = (float(v) for v in frame_size)
    t, h, w = patch_map.shape
    out_h, out_w = (int(v) for v in out_hw)

    def overlap(start, size, total, n_out, n_src):
        a = start + size * torch.arange(n_out, dtype=torch.float64) / n_out  # output cell edges (source px)
        b = a + size / n_out
        s0 = total * torch.arange(n_src, dtype=torch.float64) / n_src  # stored cell edges
        s1 = s0 + total / n_src
        return ((a[:, None] < s1[None, :]) & (b[:, None] > s0[None, :])).float()

    rows = overlap(top, ch, height, out_h, h)
    cols = overlap(left, cw, width, out_w, w)
    x = patch_map.float()
    # max over overlapped cells: exact for {0, 1} maps via a weighted "any", general maps via broadcasting
    return (x[:, None, None, :, :] * rows[None, :, None, :, None].float() *
            cols[None, None, :, None, :].float()).amax(dim=(-2, -1))


def align_saliency(patch_map, frame_indices, tubelet_size: int, reduce: str = "max", crop=None,
                   frame_size=None, out_hw=None) -> torch.Tensor:
    """Saliency of every token of a sampled clip from a per-video map (fix of SaViMAE defect 1, docs/methods/savimae.md).

    Args:
        patch_map: float ``(T_video, h, w)``, one slice per raw frame (the precompute tool's output).
        frame_indices: int ``(T,)`` frames sampled for the clip (indices into ``T_video``).
        tubelet_size: frames per token; T must be a multiple.
        reduce: pooling over a tubelet's frames, ``"max"`` or ``"mean"``.
        crop, frame_size, out_hw: map through the training crop (see :func:`crop_patch_map`); None = no crop.

    Returns:
        float32 ``(T / tubelet, h', w')`` token saliency in the token order of the encoder.

    Raises:
        IndexError: a sampled index beyond the stored frames (the map belongs to another video).
    """
    x = torch.as_tensor(np.asarray(patch_map)).float()
    idx = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[0]):
        raise IndexError(f"sampled frame {int(idx.max())} outside the {x.shape[0]} saliency slices")
    x = x[torch.from_numpy(idx)]
    if crop is not None:
        x = crop_patch_map(x, crop, frame_size, out_hw or x.shape[1:])
    elif out_hw is not None and tuple(out_hw) != tuple(x.shape[1:]):
        raise ValueError(f"saliency map grid {tuple(x.shape[1:])} differs from the token grid {tuple(out_hw)}")
    return tubelet_pool(x, tubelet_size, reduce)


def saliency_path(saliency_root: str, rel_path: str) -> str:
    """Patch-saliency file of a list row: ``<saliency_root>/<rel_path>.npy`` (the precompute tool mirrors its
    input tree: ``Class/video.mp4 -> Class/video.mp4.npy``, frame folder ``Class/v_x -> Class/v_x.npy``, as
    SaViMAE; keeping the video extension keeps ``a.mp4`` and ``a.avi`` apart)."""
    return os.path.join(saliency_root, rel_path.rstrip("/").lstrip(os.sep) + ".npy")


def load_patch_saliency(path: str) -> np.ndarray:
    """Load a ``(T_video, h, w)`` float32 patch-saliency array.

    Raises:
        MissingSaliencyError: the file is missing, unreadable or not 3-D (names the file).
    """
    if not os.path.isfile(path):
        raise MissingSaliencyError(f"{path}: saliency file not found; run `python -m snappix.tools.saliency` "
                                   f"for this video or check --saliency_root")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for truncated files
        raise MissingSaliencyError(f"{path}: cannot read saliency array ({exc})") from exc
    if arr.ndim != 3:
        raise MissingSaliencyError(f"{path}: expected a (T, H/p, W/p) array, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


class SaliencyMasking:
    """SaViMAE masking from token saliency, with a fixed number of hidden tokens per sample.

    Tokens with saliency ``>= 0.5`` are salient (S), the others non-salient (NS). Two semantics
    (``docs/methods/savimae.md``, defect 2):

    * ``"budget"`` (SaViMAE's training code): ``K = int(nonsalient_mask_ratio * N)`` hidden, of which
      ``K_s = int(salient_mask_ratio * K)`` drawn from S and ``K - K_s`` from NS; a group too small is
      fully hidden and the shortfall drawn from the remaining tokens. Hidden: exactly K.
    * ``"per_group"`` (the README): salient tokens are hidden at rate ``salient_mask_ratio`` and
      non-salient at ``nonsalient_mask_ratio``; to keep batches dense the visible count is fixed at
      ``V = N - int(mask_ratio * N)`` and split between the groups in proportion to their expected
      visible counts ``(1 - r_s)|S| : (1 - r_ns)|NS|`` (rounded, clipped to the group sizes). When
      ``int(mask_ratio * N)`` equals the README's expected count the two agree. Hidden: exactly N - V.

    Args:
        input_size: token grid ``(T', H', W')``.
        salient_mask_ratio, nonsalient_mask_ratio: ``r_s``, ``r_ns`` in [0, 1] (SaViMAE 0.85 / 0.95).
        semantics: ``"per_group"`` or ``"budget"``.
        mask_ratio: overall ratio of ``per_group`` (ignored by ``budget``).

    ``__call__(saliency, rng)``: float ``(T', H', W')`` or ``(N,)`` token saliency -> bool ``(N,)``,
    True = hidden.

    Raises:
        ValueError: ratios outside [0, 1] (``mask_ratio`` in [0, 1)), an unknown semantics, a saliency
            of the wrong size.
    """

    def __init__(self, input_size: Sequence[int], salient_mask_ratio: float = 0.85,
                 nonsalient_mask_ratio: float = 0.95, semantics: str = "per_group", mask_ratio: float = 0.9):
        self.t, self.h, self.w = token_grid(input_size)
        self.num_tokens = self.t * self.h * self.w
        for name, r in (("salient_mask_ratio", salient_mask_ratio), ("nonsalient_mask_ratio", nonsalient_mask_ratio)):
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {r}")
        if semantics not in SAVI_SEMANTICS:
            raise ValueError(f"semantics must be one of {SAVI_SEMANTICS}, got {semantics!r}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.r_s, self.r_ns, self.semantics = salient_mask_ratio, nonsalient_mask_ratio, semantics
        if semantics == "budget":
            self.num_masked = int(nonsalient_mask_ratio * self.num_tokens)
            if self.num_masked >= self.num_tokens:
                raise ValueError("budget semantics: nonsalient_mask_ratio leaves no visible token")
        else:
            self.num_masked = int(mask_ratio * self.num_tokens)
        self.num_visible = self.num_tokens - self.num_masked

    def __call__(self, saliency, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = resolve_rng(rng)
        sal = np.asarray(saliency, dtype=np.float32).reshape(-1)
        if sal.size != self.num_tokens:
            raise ValueError(f"saliency has {sal.size} values, the token grid {self.t}x{self.h}x{self.w} "
                             f"has {self.num_tokens}")
        salient = np.flatnonzero(sal >= 0.5)
        other = np.flatnonzero(sal < 0.5)
        salient, other = rng.permutation(salient), rng.permutation(other)
        mask = np.zeros(self.num_tokens, dtype=bool)
        if self.semantics == "budget":
            k_s = int(self.r_s * self.num_masked)
            k_s = min(k_s, salient.size)
            k_ns = min(self.num_masked - int(self.r_s * self.num_masked), other.size)
            mask[salient[:k_s]] = True
            mask[other[:k_ns]] = True
            short = self.num_masked - k_s - k_ns
            if short > 0:  # a group was too small: fill from the remaining tokens at random
                rest = rng.permutation(np.flatnonzero(~mask))
                mask[rest[:short]] = True
            return mask
        a, b = (1.0 - self.r_s) * salient.size, (1.0 - self.r_ns) * other.size
        v = self.num_visible
        v_s = int(round(v * a / (a + b))) if a + b > 0 else int(round(v * salient.size / self.num_tokens))
        v_s = min(max(v_s, v - other.size, 0), salient.size, v)
        mask[salient[v_s:]] = True
        mask[other[v - v_s:]] = True
        return mask

    def __repr__(self) -> str:
        return (f"SaliencyMasking(({self.t}, {self.h}, {self.w}), {self.semantics}, r_s={self.r_s}, "
                f"r_ns={self.r_ns}, hidden {self.num_masked})")


class PrecomputedSaliency:
    """Token saliency of a sampled clip from the precompute tool's per-video arrays.

    ``__call__(context) -> float32 (T', H', W')``: loads ``<root>/<rel_path minus extension>.npy``, takes
    the sampled frames, maps them through the crop and pools over tubelets (``reduce``).

    Raises:
        MissingSaliencyError: missing / unreadable file, or a map shorter than the sampled frames.
    """

    def __init__(self, saliency_root: str, grid: Sequence[int], tubelet_size: int, reduce: str = "max"):
        if not saliency_root or not os.path.isdir(saliency_root):
            raise MissingSaliencyError(f"--saliency_root {saliency_root!r} is not a folder")
        self.root, self.grid, self.tubelet_size, self.reduce = saliency_root, tuple(grid), tubelet_size, reduce

    def path(self, rel_path: str) -> str:
        """The array file of a list row."""
        return saliency_path(self.root, rel_path)

    def __call__(self, context: dict) -> torch.Tensor:
        path = self.path(context["rel_path"])
        arr = load_patch_saliency(path)
        try:
            return align_saliency(arr, context["frame_indices"], self.tubelet_size, self.reduce,
                                  crop=context.get("crop"), frame_size=context.get("frame_size"),
                                  out_hw=self.grid[1:])
        except IndexError as exc:
            raise MissingSaliencyError(f"{path}: {exc} (video {context.get('path')}); recompute it") from exc


class OnlineSaliency:
    """Token saliency computed from the sampled, transformed clip itself (no precompute; always aligned).

    ``__call__(context) -> float32 (T', H', W')``: :func:`frame_saliency` of ``context["video"]``
    ``(C, T, S, S)`` in [0, 1] (grey: channel mean), :func:`patch_saliency` at ``threshold``, tubelet pool.
    """

    def __init__(self, patch_size: int, tubelet_size: int, threshold: float = 0.5, reduce: str = "max"):
        self.patch_size, self.tubelet_size, self.threshold, self.reduce = patch_size, tubelet_size, threshold, reduce

    def __call__(self, context: dict) -> torch.Tensor:
        video = context["video"]
        grey = video.float().mean(dim=0)  # (T, S, S)
        sal = frame_saliency(grey, input_size=None)
        return tubelet_pool(patch_saliency(sal, self.patch_size, self.threshold), self.tubelet_size, self.reduce)


class SaliencyMaskGenerator:
    """Data-side generator for ``--mask_type savi`` / ``attention``: saliency source + masking rule.

    Called by the dataset as ``gen(rng, clip=context)`` (``needs_clip = True``; see the module doc);
    returns bool ``(N,)``, True = hidden, exactly ``masking.num_masked`` True.

    Args:
        source: :class:`PrecomputedSaliency` or :class:`OnlineSaliency` (any ``context -> (T', H', W')``).
        masking: :class:`SaliencyMasking` or :class:`~snappix.masking.attention.AttentionGuidedMasking`.

    Raises:
        TypeError: called without the clip context.
    """

    needs_clip = True

    def __init__(self, source, masking):
        self.source, self.masking = source, masking
        self.num_masked = masking.num_masked

    def __call__(self, rng: np.random.Generator | None = None, clip: dict | None = None) -> np.ndarray:
        if clip is None:
            raise TypeError("saliency masking needs the sampled clip (gen(rng, clip=context)); use it through "
                            "VideoPretrainDataset")
        return self.masking(self.source(clip).numpy(), rng)

    def __repr__(self) -> str:
        return f"SaliencyMaskGenerator({type(self.source).__name__}, {self.masking!r})"


def build_saliency_mask_generator(mask_type: str, grid: Sequence[int], patch_size: int, tubelet_size: int,
                                  saliency: str = "precomputed", saliency_root: str | None = None,
                                  mask_ratio: float = 0.9, salient_mask_ratio: float = 0.85,
                                  nonsalient_mask_ratio: float = 0.95, semantics: str = "per_group",
                                  threshold: float = 0.5, reduce: str = "max") -> SaliencyMaskGenerator:
    """Factory for ``--mask_type savi`` / ``attention`` with ``--saliency precomputed|online``.

    ``attention`` here weights the per-frame visible draw by token saliency (``mask_ratio`` per frame).

    Raises:
        ValueError: unknown ``mask_type`` / ``saliency``; MissingSaliencyError: ``precomputed`` without a
            ``saliency_root`` folder.
    """
    from .attention import AttentionGuidedMasking

    if saliency == "precomputed":
        source = PrecomputedSaliency(saliency_root, grid, tubelet_size, reduce)
    elif saliency == "online":
        source = OnlineSaliency(patch_size, tubelet_size, threshold, reduce)
    else:
        raise ValueError(f"saliency must be 'precomputed' or 'online', got {saliency!r}")
    if mask_type == "savi":
        masking = SaliencyMasking(grid, salient_mask_ratio, nonsalient_mask_ratio, semantics, mask_ratio)
    elif mask_type == "attention":
        masking = AttentionGuidedMasking(grid, mask_ratio)
    else:
        raise ValueError(f"unknown saliency mask type {mask_type!r}; valid: {list(SALIENCY_MASK_TYPES)}")
    return SaliencyMaskGenerator(source, masking)
