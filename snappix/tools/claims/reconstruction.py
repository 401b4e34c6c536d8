"""Study "reconstruction": how well can 16 frames be recovered from one coded image, pattern by pattern?

SnapPix (Lin et al., DAC'25, https://arxiv.org/abs/2504.04535) trains one coded-image -> 16-frame decoder per
exposure pattern and compares their reconstruction quality; its decorrelated pattern (``decor_fix``) is meant
to keep the most information about the clip in the single coded image. This study measures the same
comparison on a CPU, for ``decor_fix`` (SnapPix's released ``pattern_4`` and a pattern learned here with the
decorrelation recipe of study 4), ``naive`` (``pattern_init``, 50 % random), ``sparse``
(``pattern_init_sparse``, one slot per pixel), ``long`` (all 16 slots) and ``short`` (one slot).

Protocol (fixed in advance; nothing is selected on the held-out clips):

* clips: synthetic clips of :func:`snappix.data.synthetic.render_clip` rendered in memory (grey, no video
  codec), 16-frame windows at frame step 2, ``size x size`` pixels; the first ``num_train`` clips of the seed
  train, the next ``num_test`` are held out. Optionally (``--videos``) the decoders trained on synthetic clips
  are also scored on real clips (protocol windows of ``docs/decorrelation_protocol.md``), a domain shift.
* coded image: :class:`snappix.sensor.CodedExposure` (the exposed-slot normalisation of the models).
* decoder: exact ridge regression (:func:`fit_ridge`) from the coded pixels of a tile and a ``border``-pixel
  ring of its neighbours to the tile's 16 x 8 x 8 frame pixels, one decoder per pattern, the same for every
  tile (the pattern repeats per tile). It is the best linear decoder for each pattern, so the comparison
  measures the pattern and not the luck of a training run; the ridge weight is a fixed fraction of the mean
  feature energy.
  The ViT path (``run_pretraining.py --task reconstruction``) was not retuned here: within a CPU budget it stays
  at the floor below, and the exact linear decoder separates the patterns without a training run's noise.
* metrics on ``[0, 1]`` frames (prediction clamped): PSNR ``10 log10(1 / MSE)`` per held-out clip over all 16
  frames, averaged over clips; SSIM per frame with ``torchmetrics`` (else ``skimage``; neither is a
  requirement of the project, so without them the SSIM column says "n/a").
* floor: the per-position mean predictor (the mean of each ``(t, y, x)`` over the training clips), which is
  what the ViT decoder of ``run_pretraining.py --task reconstruction`` collapses to today.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from snappix.data.synthetic import clip_rng, render_clip
from snappix.sensor import CodedExposure
from snappix.sensor.moments import TileMoments
from snappix.tools.claims import decor
from snappix.tools.claims.decor import fixed_pattern
from snappix.tools.claims.reconstruction_table import render
from snappix.tools.claims.report import Parts

__all__ = ["NAME", "Settings", "PATTERNS", "synthetic_clips", "coded_image", "tile_features", "tile_targets",
           "fit_ridge", "decode", "mean_predictor", "clip_psnr", "psnr", "ssim", "run_study", "render"]

NAME = "reconstruction"
T, TILE = 16, 8
#: pattern name -> label (``decor_fix_learned`` is learned in this study on the training clips)
PATTERNS = {"decor_fix_learned": "decor_fix, learned here (decorrelation on the training clips)",
            "pattern_4": "decor_fix, SnapPix pattern_4 (released)",
            "naive": "naive (pattern_init, 50 % random)", "sparse": "sparse (pattern_init_sparse)",
            "long": "long exposure (16 slots)", "short": "short exposure (1 slot)"}
#: decoders: name -> border (pixels of the neighbouring tiles seen around the 8 x 8 tile)
DECODERS = {"tile": 0, "tile+border": 4}


@dataclass(frozen=True)
class Settings:
    """Sizes of a run: full (the documented one) or ``--fast`` (tests; seconds)."""

    num_train: int = 512
    num_test: int = 128
    size: int = 64
    frame_step: int = 2
    ridge: float = 1e-4
    steps: int = 2000
    max_flips: int = 1000
    lr: float = 1e-3

    @classmethod
    def of(cls, fast: bool) -> "Settings":
        """``Settings()`` or the ``--fast`` sizes (48 / 16 clips of 32 x 32, 200 steps, 100 flips)."""
        return cls(num_train=48, num_test=16, size=32, steps=200, max_flips=100) if fast else cls()


def synthetic_clips(seed: int, first: int, count: int, size: int, frame_step: int = 2) -> torch.Tensor:
    """Clips ``first .. first + count - 1`` of ``seed`` as float32 ``(count, 1, 16, size, size)`` in [0, 1].

    Clip ``i`` is :func:`render_clip` (class ``i % 8``) with :func:`clip_rng` ``(seed, i)``, grey = channel mean,
    frames ``0, frame_step, ..., 15 * frame_step``.

    Raises:
        ValueError: ``size`` < 24 or not a multiple of 8 (from the renderer or here).
    """
    if size % TILE:
        raise ValueError(f"size must be a multiple of {TILE}, got {size}")
    out = np.empty((count, 1, T, size, size), dtype=np.float32)
    for k in range(count):
        i = first + k
        frames = render_clip(i % 8, num_frames=T * frame_step, height=size, width=size, rng=clip_rng(seed, i))
        out[k, 0] = frames[::frame_step].astype(np.float32).mean(axis=-1) / 255.0
    return torch.from_numpy(out)


@torch.no_grad()
def coded_image(pattern: torch.Tensor, clips: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Coded images ``(N, 1, H, W)`` float32 of clips ``(N, 1, 16, H, W)`` under a ``(1, 16, 8, 8)`` pattern."""
    sensor = CodedExposure(T, TILE, init_pattern=pattern, trainable=False)
    return torch.cat([sensor(clips[i:i + batch])[:, :, 0] for i in range(0, len(clips), batch)])


def tile_features(coded: torch.Tensor, border: int) -> torch.Tensor:
    """Per-tile inputs ``(N * L, (8 + 2 border)^2 + 1)`` float64: the tile's coded pixels, ``border`` pixels of
    its neighbours (replicate padding at the frame edge) and a constant 1; ``L`` = tiles per image."""
    x = F.pad(coded, (border,) * 4, mode="replicate") if border else coded
    cols = F.unfold(x, TILE + 2 * border, stride=TILE)  # (N, K, L)
    cols = cols.permute(0, 2, 1).reshape(-1, cols.shape[1]).double()
    return torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], dim=1)


def tile_targets(clips: torch.Tensor) -> torch.Tensor:
    """Per-tile frame pixels ``(N * L, 16 * 64)`` float64 of clips ``(N, 1, 16, H, W)`` (same tile order)."""
    n, _, t, h, w = clips.shape
    cols = F.unfold(clips.reshape(n, t, h, w), TILE, stride=TILE)  # (N, T * 64, L)
    return cols.permute(0, 2, 1).reshape(-1, cols.shape[1]).double()


def fit_ridge(features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-4) -> torch.Tensor:
    """Ridge solution ``W`` (``(K, 1024)`` float64) of ``targets ~ features @ W``.

    The penalty is ``ridge * mean(diag(X^T X))`` on every weight but the last (the constant column).

    Raises:
        ValueError: features and targets of different lengths, or ``ridge`` < 0.
    """
    if len(features) != len(targets):
        raise ValueError(f"{len(features)} feature rows but {len(targets)} target rows")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    a = features.T @ features
    penalty = ridge * float(a.diagonal()[:-1].mean())
    a = a + torch.diag(torch.cat([torch.full((len(a) - 1,), penalty, dtype=a.dtype), a.new_zeros(1)]))
    return torch.linalg.lstsq(a, features.T @ targets).solution


def decode(weights: torch.Tensor, coded: torch.Tensor, border: int) -> torch.Tensor:
    """Reconstruct clips ``(N, 1, 16, H, W)`` float32, clamped to [0, 1], from coded images ``(N, 1, H, W)``."""
    n, _, h, w = coded.shape
    cols = (tile_features(coded, border) @ weights).float()  # (N * L, T * 64)
    cols = cols.reshape(n, -1, T * TILE * TILE).permute(0, 2, 1)
    frames = F.fold(cols, (h, w), TILE, stride=TILE)  # (N, T, H, W)
    return frames.clamp(0, 1).unsqueeze(1)


def mean_predictor(train: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The per-position mean of the training clips ``(N, 1, 16, H, W)``, broadcast to ``like``'s shape.

    Raises:
        ValueError: the training clips and ``like`` differ in frame size.
    """
    if train.shape[1:] != like.shape[1:]:
        raise ValueError(f"training clips {tuple(train.shape[1:])} vs {tuple(like.shape[1:])}")
    return train.mean(dim=0, keepdim=True).expand_as(like)


def clip_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``10 log10(1 / MSE)`` per clip (all frames and pixels), float64 ``(N,)``, for ``(N, ...)`` in [0, 1]."""
    mse = ((pred.double() - target.double()) ** 2).flatten(1).mean(dim=1).clamp(min=1e-12)
    return 10 * torch.log10(1.0 / mse)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over clips of :func:`clip_psnr`."""
    return float(clip_psnr(pred, target).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> tuple[float | None, str]:
    """Mean SSIM over all frames of clips ``(N, 1, T, H, W)`` in [0, 1] and the library that computed it.

    Uses ``torchmetrics`` (Gaussian window 11, sigma 1.5, data range 1), else ``skimage`` (its defaults, data
    range 1); returns ``(None, "n/a")`` when neither is installed (neither is a requirement of the project).
    """
    p = pred.reshape(-1, 1, *pred.shape[-2:]).float()
    t = target.reshape(-1, 1, *target.shape[-2:]).float()
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
        return float(structural_similarity_index_measure(p, t, data_range=1.0)), "torchmetrics"
    except ImportError:
        pass
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return None, "n/a"
    vals = [structural_similarity(a[0].numpy(), b[0].numpy(), data_range=1.0) for a, b in zip(p, t)]
    return float(np.mean(vals)), "skimage"


def learn_pattern(train: torch.Tensor, s: Settings, seed: int) -> tuple[torch.Tensor, dict]:
    """The ``decor_fix`` pattern learned here: study 4's ``synthetic_only`` recipe (patch-norm moments of the
    training clips, dihedral symmetrisation, :func:`decor.fit_pattern`). Returns ``(pattern (1, 16, 8, 8), stats)``."""
    moments = TileMoments(T, TILE, patch_norm=True)
    for i in range(0, len(train), 64):
        moments.update(train[i:i + 64])
    return decor.fit_pattern(decor.mix([(moments, 1.0)], "dihedral"), seed, s.steps, s.lr, s.max_flips)


def evaluate_pattern(pattern: torch.Tensor, train: torch.Tensor, test: torch.Tensor, s: Settings,
                     real: torch.Tensor | None = None) -> dict:
    """Fit every :data:`DECODERS` entry for ``pattern`` on ``train`` and score it on ``test`` (and ``real``).

    Returns ``{decoder: {"psnr", "clip_psnr" (per held-out clip), "ssim", "train_psnr"[, "real_psnr",
    "real_ssim"]}}`` plus ``"ssim_library"``.
    """
    coded_train, coded_test = coded_image(pattern, train), coded_image(pattern, test)
    coded_real = coded_image(pattern, real) if real is not None else None
    targets = tile_targets(train)
    out: dict = {}
    for name, border in DECODERS.items():
        w = fit_ridge(tile_features(coded_train, border), targets, s.ridge)
        pred = decode(w, coded_test, border)
        value, lib = ssim(pred, test)
        per_clip = clip_psnr(pred, test)
        row = {"psnr": float(per_clip.mean()), "clip_psnr": [round(float(v), 4) for v in per_clip], "ssim": value,
               "train_psnr": psnr(decode(w, coded_train, border), train)}
        if coded_real is not None:
            real_pred = decode(w, coded_real, border)
            row.update(real_psnr=psnr(real_pred, real), real_ssim=ssim(real_pred, real)[0])
        out[name], out["ssim_library"] = row, lib
    return out


def real_clips(videos: str, max_windows: int = 64) -> torch.Tensor:
    """Protocol windows (16 frames, step 4, every 32 frames, centre crop 112, SnapPix grey) of real clips,
    float32 ``(N, 1, 16, 112, 112)`` in [0, 1], at most ``max_windows`` (the first ones).

    Raises:
        ValueError / TooManyBadVideos: no readable clip in ``videos``.
    """
    from snappix.decorrelation.data import GreyClipSource, list_videos, protocol_windows

    source = GreyClipSource(list_videos(videos), preprocess="snappix", num_workers=1)
    windows = protocol_windows(source, T, 4, 32)[:max_windows]
    return source.batch(windows)


def _pattern(name: str, parts: Parts, work: Path, train: torch.Tensor, s: Settings, seed: int, log) -> torch.Tensor:
    if name != "decor_fix_learned":
        return fixed_pattern(name)
    path = work / "patterns" / "decor_fix_learned.npy"

    def compute() -> dict:
        pattern, stats = learn_pattern(train, s, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, pattern.numpy().astype(np.uint8))
        os.replace(tmp, path)
        return {"pattern": str(path), **stats}

    parts.run("learn_decor_fix", compute, log)
    return torch.from_numpy(np.load(path).astype(np.float32))


def tile_mean_predictor(train: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The mean 16 x 8 x 8 tile of the training clips, repeated over every tile of ``like`` ``(N, 1, 16, H, W)``
    (the floor for clips of another frame size, e.g. real clips)."""
    tile = tile_targets(train).mean(dim=0).float().reshape(T, TILE, TILE)
    n, _, _, h, w = like.shape
    return tile.repeat(1, h // TILE, w // TILE).expand(n, 1, T, h, w)


def _floor(train: torch.Tensor, test: torch.Tensor, real: torch.Tensor | None) -> dict:
    pred = mean_predictor(train, test)
    out = {"psnr": psnr(pred, test), "ssim": ssim(pred, test)[0]}
    if real is not None:
        real_pred = tile_mean_predictor(train, real)
        out.update(real_psnr=psnr(real_pred, real), real_ssim=ssim(real_pred, real)[0])
    return out


def run_study(work_dir: str | os.PathLike, videos: str | None, fast: bool = False, seed: int = 0,
              log=print) -> dict:
    """Run (or resume) the study in ``work_dir/reconstruction``; returns the results (see :func:`render`).

    Parts (resumed): the learned pattern, the floor, one part per pattern. Clips are re-rendered on each run
    (a function of the seed alone, a few seconds).

    Args:
        videos: folder of real clips for the extra domain-shift column, or None / missing folder.
        fast: the small :meth:`Settings.of` sizes; ``seed``: seed of the clips and of the learned pattern.

    Raises:
        ValueError: unreadable part files (delete them to redo the part).
    """
    s = Settings.of(fast)
    work = Path(work_dir) / NAME / ("fast" if fast else "full") / f"seed{seed}"
    parts = Parts(work)
    train = synthetic_clips(seed, 0, s.num_train, s.size, s.frame_step)
    test = synthetic_clips(seed, s.num_train, s.num_test, s.size, s.frame_step)
    log(f"[claims] reconstruction: {len(train)} training / {len(test)} held-out clips of {s.size} px")
    has_real = bool(videos) and Path(videos).is_dir()
    real = real_clips(videos) if has_real else None
    floor = parts.run("floor" + ("_real" if has_real else ""), lambda: _floor(train, test, real), log)
    rows = {}
    for name in PATTERNS:
        pattern = _pattern(name, parts, work, train, s, seed, log)
        tag = f"recon_{name}" + ("_real" if has_real else "")
        rows[name] = parts.run(tag, lambda p=pattern: evaluate_pattern(p, train, test, s, real), log)
        rows[name]["duty_cycle"] = float(pattern.mean())
    parts_s = sum(float((parts.get(p.stem) or {}).get("seconds", 0.0)) for p in (work / "parts").glob("*.json"))
    return {"settings": dict(s.__dict__), "seed": seed, "floor": floor, "rows": rows, "labels": dict(PATTERNS),
            "decoders": dict(DECODERS), "real_windows": None if real is None else len(real),
            "learned": parts.get("learn_decor_fix"), "parts_seconds": parts_s, "work_dir": str(work)}
