"""Pattern zoo: SnapPix's ``coded_type`` names -> sensor layers (SnapPix, DAC'25; ``docs/methods/snappix.md``).

=================  ==========================================================  =========  ===================
coded_type         pattern                                                      trainable  normalisation
=================  ==========================================================  =========  ===================
``decor_fix``      learned decorrelated pattern (SnapPix ``pattern_4.pth``)     no         exposed slots
``decor_learn``    ``pattern_4.pth`` as initialisation                          yes (STE)  exposed slots
``naive``          random ~50 % duty (SnapPix ``pattern_init.pth``)             no         exposed slots
``naive_learned``  random ``U(-0.03, 0.03)`` logits (seeded)                    yes (STE)  exposed slots
``sparse``         one exposure per pixel (``pattern_init_sparse.pth``)         no         exposed slots
``long``           all T slots                                                  no         exposed (= mean)
``short``          slot ``(T - 1) // 2`` only (7 of 16)                         no         exposed (= frame)
``global``         untiled random pattern, one tile = the whole frame           no         exposed slots
``no_norm``        as ``naive``                                                 no         by T
``pami``           TPAMI'23 single coded image (:class:`PamiExposure`)          yes        by T
``none``           identity sensor (ordinary video)                             --         --
=================  ==========================================================  =========  ===================

Where a pattern comes from, in order: ``pattern_path`` (explicit file; required by nothing, overrides the
default file) > ``pattern_dir / <default file>`` (``pattern_dir`` argument, else the environment variable
``SNAPPIX_PATTERN_DIR``; the ``.pth`` name, else the same stem as ``.npy``) > for ``decor_fix`` /
``decor_learn``, SnapPix's ``pattern_4`` shipped with the package (``snappix/sensor/patterns_data/``, plain
``.npy``) > a seeded random pattern for the types that have one (``naive``, ``no_norm``: uniform logits;
``sparse``: one random slot per pixel). The layer's ``source`` attribute records which one was used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from timm.layers import to_2tuple
from torch import nn

from snappix.sensor.baselines import PamiExposure, long_exposure_pattern, short_exposure_pattern
from snappix.sensor.coded_exposure import CodedExposure
from snappix.sensor.noise import SensorNoise
from snappix.sensor.patterns import SHIPPED_PATTERN_DIR, load_pattern

__all__ = ["CODED_TYPES", "PATTERN_DIR_ENV", "IdentitySensor", "sparse_random_pattern", "resolve_pattern_dir",
           "build_sensor"]

PATTERN_DIR_ENV = "SNAPPIX_PATTERN_DIR"


class IdentitySensor(nn.Module):
    """Ordinary video camera: returns the clip ``(B, C, T, H, W)`` unchanged (``coded_type="none"``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def sparse_random_pattern(num_frames: int = 16, tile_size: int | Sequence[int] = 8, channels: int = 1,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Pattern ``(P, T, sh, sw)`` float32 with exactly one random slot open per pixel (SnapPix ``sparse_random``)."""
    sh, sw = to_2tuple(tile_size)
    slots = torch.randint(num_frames, (channels, 1, sh, sw), generator=generator)
    return torch.zeros(channels, num_frames, sh, sw).scatter_(1, slots, 1.0)


@dataclass(frozen=True)
class _Spec:
    file: str | None          # default file in the pattern directory
    random: str | None        # fallback without a file: "uniform", "sparse", or None (the shipped file is used)
    trainable: bool
    normalize: str = "exposed"


_SPECS: dict[str, _Spec] = {
    "decor_fix": _Spec("pattern_4.pth", None, False),
    "decor_learn": _Spec("pattern_4.pth", None, True),
    "naive": _Spec("pattern_init.pth", "uniform", False),
    "naive_learned": _Spec(None, "uniform", True),
    "sparse": _Spec("pattern_init_sparse.pth", "sparse", False),
    "no_norm": _Spec("pattern_init.pth", "uniform", False, "frames"),
}
_FIXED: dict[str, Callable[[int, tuple[int, int]], torch.Tensor]] = {
    "long": long_exposure_pattern,
    "short": short_exposure_pattern,
}
CODED_TYPES: tuple[str, ...] = tuple(sorted([*_SPECS, *_FIXED, "global", "pami", "none"]))


def resolve_pattern_dir(pattern_dir: str | os.PathLike | None = None) -> Path | None:
    """``pattern_dir`` if given, else ``$SNAPPIX_PATTERN_DIR`` if set, else None."""
    if pattern_dir:
        return Path(pattern_dir)
    env = os.environ.get(PATTERN_DIR_ENV)
    return Path(env) if env else None


def build_sensor(coded_type: str, num_frames: int = 16, tile_size: int | Sequence[int] = 8,
                 input_size: int | Sequence[int] = 112, pattern_channels: int = 1,
                 pattern_path: str | os.PathLike | None = None, pattern_dir: str | os.PathLike | None = None,
                 seed: int = 0, noise: SensorNoise | str | None = None) -> nn.Module:
    """Build the sensor layer for a SnapPix ``coded_type`` (table in the module docstring).

    Args:
        coded_type: one of :data:`CODED_TYPES`.
        num_frames: T.
        tile_size: pattern period ``s`` or ``(sh, sw)`` (ignored by ``global``, whose tile is the frame).
        input_size: frame size ``s`` or ``(H, W)``; used by ``global`` (tile = frame) and ``pami`` (sigma).
        pattern_channels: 1 (grey pattern, SnapPix) or C (one pattern per colour channel).
        pattern_path: explicit pattern file, overriding the type's default file.
        pattern_dir: folder with SnapPix's released patterns (else ``$SNAPPIX_PATTERN_DIR``; without
            either, ``decor_fix`` / ``decor_learn`` use the ``pattern_4`` shipped with the package).
        seed: seed of the random patterns / initialisations (``torch.Generator``).
        noise: a :class:`SensorNoise`, a spec string for :meth:`SensorNoise.from_spec`, or None (ideal sensor).

    Returns:
        An ``nn.Module`` mapping ``(B, C, T, H, W)`` in [0, 1] to ``(B, C, 1, H, W)``
        (:class:`IdentitySensor` for ``"none"``).

    Raises:
        ValueError: unknown ``coded_type`` (the message lists the valid names), or a pattern whose shape
            does not fit ``num_frames``/``tile_size``/``pattern_channels``.
        FileNotFoundError: a missing default file in an explicitly given ``pattern_dir`` (or
            ``$SNAPPIX_PATTERN_DIR``).
        snappix.sensor.patterns.PatternFileError: an unreadable or unsafe pattern file.
    """
    if coded_type not in CODED_TYPES:
        raise ValueError(f"unknown coded_type {coded_type!r}; valid names: {', '.join(CODED_TYPES)}")
    if isinstance(noise, str):
        noise = SensorNoise.from_spec(noise)
    gen = torch.Generator().manual_seed(seed)
    tile = to_2tuple(tile_size)
    common = dict(num_frames=num_frames, pattern_channels=pattern_channels, noise=noise)

    if coded_type == "none":
        return IdentitySensor()
    if coded_type == "pami":
        return PamiExposure(tile_size=tile, input_size=input_size, generator=gen, **common)
    if coded_type == "global":
        return CodedExposure(tile_size=to_2tuple(input_size), trainable=False, generator=gen,
                             source=f"global random (seed {seed})", **common)
    if coded_type in _FIXED:
        pattern = _FIXED[coded_type](num_frames, tile)
        if pattern_channels > 1:
            pattern = pattern.expand(pattern_channels, -1, -1, -1)
        return CodedExposure(tile_size=tile, init_pattern=pattern, trainable=False, source=coded_type, **common)

    spec = _SPECS[coded_type]
    pattern, source = None, ""
    if pattern_path:
        pattern, source = load_pattern(pattern_path), str(pattern_path)
    elif spec.file is not None and resolve_pattern_dir(pattern_dir) is not None:
        path = resolve_pattern_dir(pattern_dir) / spec.file
        if not path.is_file() and path.with_suffix(".npy").is_file():
            path = path.with_suffix(".npy")
        if not path.is_file():
            raise FileNotFoundError(
                f"coded_type {coded_type!r} needs {spec.file} in the pattern folder, not found: {path}")
        pattern, source = load_pattern(path), str(path)
    elif spec.random == "sparse":
        pattern, source = sparse_random_pattern(num_frames, tile, pattern_channels, gen), f"sparse random (seed {seed})"
    elif spec.random == "uniform":
        source = f"uniform random logits (seed {seed})"
    else:  # decor_fix / decor_learn: SnapPix's pattern_4, shipped with the package
        path = SHIPPED_PATTERN_DIR / Path(spec.file).with_suffix(".npy").name
        pattern, source = load_pattern(path), f"shipped {path.stem} ({path})"
    if pattern is not None and (pattern.shape[1] != num_frames or tuple(pattern.shape[2:]) != tile):
        raise ValueError(f"pattern from {source} has shape {tuple(pattern.shape)}, which does not fit "
                         f"num_frames={num_frames}, tile_size={tile}")
    return CodedExposure(tile_size=tile, init_pattern=pattern, trainable=spec.trainable, normalize=spec.normalize,
                         generator=gen, source=source, **common)
