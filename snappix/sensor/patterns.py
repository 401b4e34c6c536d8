"""Exposure-pattern files: safe loading (ours and SnapPix's released ones), saving, PNG grids.

File formats read by :func:`load_pattern`:

* ours (:func:`save_pattern`): ``torch.save`` of a float32 tensor ``(P, T, sh, sw)`` in {0, 1};
* SnapPix's released patterns (``decorrelation_training_wd0_norm_new/pattern_*.pth``): ``torch.save``
  of a pickled **numpy** float32 array ``(1, 16, 8, 8)``;
* plain ``.npy`` arrays, read with ``np.load(allow_pickle=False)`` (no pickle at all). The package ships
  SnapPix's three released patterns in this form in ``patterns_data/`` (:data:`SHIPPED_PATTERN_DIR`,
  :func:`load_shipped_pattern`; source and licence in its README).

The two ``torch.save`` formats are read with ``torch.load(weights_only=True)``. For the numpy case only the
globals needed to rebuild a plain numeric ndarray are allow-listed, and only for the duration of the call
(``torch.serialization.safe_globals``): ``numpy.core.multiarray._reconstruct`` (also under its numpy-2
name ``numpy._core.multiarray._reconstruct``), ``numpy.ndarray``, ``numpy.dtype`` and the numeric dtype
classes of :data:`ALLOWED_NUMPY_DTYPES`. Any other global (``os.system``, ``builtins.eval``, object
arrays, ...) makes the load fail with :class:`PatternFileError` before anything is executed.
"""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from snappix.errors import UserError
from snappix.sensor.coded_exposure import as_pattern_tensor

__all__ = ["ALLOWED_NUMPY_DTYPES", "SHIPPED_PATTERN_DIR", "SHIPPED_PATTERNS", "PatternFileError", "load_pattern",
           "load_shipped_pattern", "save_pattern", "plot_pattern_grid", "pattern_stats"]

ALLOWED_NUMPY_DTYPES = (np.float32, np.float64, np.float16, np.uint8, np.int8, np.int32, np.int64, np.bool_)

#: SnapPix's released patterns as plain ``.npy`` files, installed with the package
SHIPPED_PATTERN_DIR = Path(__file__).resolve().parent / "patterns_data"
#: names of the shipped patterns (file stems in :data:`SHIPPED_PATTERN_DIR`)
SHIPPED_PATTERNS = ("pattern_4", "pattern_init", "pattern_init_sparse")


class PatternFileError(UserError, ValueError):
    """A pattern file is missing, unsafe (forbidden pickle globals), or does not hold a binary pattern."""


def _numpy_safe_globals() -> list:
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    allowed: list = [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
    ]
    for scalar in ALLOWED_NUMPY_DTYPES:
        allowed.append(type(np.dtype(scalar)))  # numpy >= 1.25: numpy.dtypes.Float32DType, ...
    return allowed


def load_pattern(path: str | os.PathLike) -> torch.Tensor:
    """Load a binary exposure pattern without enabling arbitrary unpickling.

    Args:
        path: a pattern file (see the module docstring for the accepted formats); it may hold a tensor or
            numpy array ``(T, sh, sw)`` / ``(P, T, sh, sw)``, or a dict with key ``"pattern"``.

    Returns:
        float32 CPU tensor ``(P, T, sh, sw)`` with values in {0, 1}
        (SnapPix's ``pattern_4.pth``: ``(1, 16, 8, 8)``, 116 ones).

    Raises:
        PatternFileError: the file does not exist, uses a pickle global outside the allow-list (nothing is
            executed), or does not contain a binary pattern of a valid shape.
    """
    path = Path(path)
    if not path.is_file():
        raise PatternFileError(f"pattern file not found: {path}")
    if path.suffix.lower() == ".npy":
        return _load_npy(path)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "nsupported global" in ln or "unsupported GLOBAL" in ln),
                      lines[0] if lines else "")
        reason = reason.split(" Please use")[0].split(" To allowlist")[0]
        raise PatternFileError(f"refusing to load {path}: not a plain tensor/numpy pattern file "
                               f"({type(exc).__name__}: {reason}); nothing in it was executed") from exc
    if isinstance(obj, dict):
        if "pattern" not in obj:
            raise PatternFileError(f"{path}: a dict without a 'pattern' key (keys: {sorted(map(str, obj))[:10]})")
        obj = obj["pattern"]
    if not isinstance(obj, (torch.Tensor, np.ndarray)):
        raise PatternFileError(f"{path}: expected a tensor or numpy array, found {type(obj).__name__}")
    try:
        return as_pattern_tensor(obj)
    except ValueError as exc:
        raise PatternFileError(f"{path}: {exc}") from exc


def _load_npy(path: Path) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PatternFileError(f"refusing to load {path}: not a plain numeric .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise PatternFileError(f"{path}: expected one .npy array, found {type(array).__name__}")
    try:
        return as_pattern_tensor(array)
    except ValueError as exc:
        raise PatternFileError(f"{path}: {exc}") from exc


def load_shipped_pattern(name: str = "pattern_4") -> torch.Tensor:
    """One of SnapPix's released patterns as shipped with the package (no pickle involved).

    Args:
        name: a stem of :data:`SHIPPED_PATTERNS` (a ``.pth`` / ``.npy`` suffix is ignored).

    Returns:
        float32 CPU tensor ``(1, 16, 8, 8)`` in {0, 1}; ``pattern_4`` has 116 ones.

    Raises:
        PatternFileError: an unknown name (the message lists the shipped ones) or a missing data file
            (an installation without the package data).
    """
    stem = Path(name).stem if Path(name).suffix in (".pth", ".npy") else name
    if stem not in SHIPPED_PATTERNS:
        raise PatternFileError(f"no shipped pattern {name!r}; shipped: {', '.join(SHIPPED_PATTERNS)}")
    return load_pattern(SHIPPED_PATTERN_DIR / f"{stem}.npy")


def save_pattern(pattern: torch.Tensor | np.ndarray, stem: str | os.PathLike,
                 png: bool = True) -> tuple[Path, Path | None]:
    """Write ``<stem>.pth`` (float32 tensor ``(P, T, sh, sw)``, ``weights_only=True``-loadable) and ``<stem>.png``.

    Both files are written to a temporary name and moved into place with :func:`os.replace`.

    Args:
        pattern: binary ``(T, sh, sw)`` or ``(P, T, sh, sw)``.
        stem: path without suffix, e.g. ``out/pattern_3``.
        png: also write the slot grid (:func:`plot_pattern_grid`).

    Returns:
        ``(tensor_path, png_path or None)``.

    Raises:
        ValueError: not a binary pattern.
    """
    p = as_pattern_tensor(pattern)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pth = stem.with_name(stem.name + ".pth")
    tmp = pth.with_name("." + pth.name + ".tmp")
    torch.save(p, tmp)
    os.replace(tmp, pth)
    png_path = plot_pattern_grid(p, stem.with_name(stem.name + ".png")) if png else None
    return pth, png_path


def plot_pattern_grid(pattern: torch.Tensor | np.ndarray, path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG of the T time slots of a pattern as binary images (white = exposed), one block of rows per channel.

    Slots are laid out on a ``ceil(sqrt(T))``-column grid (4 x 4 for T = 16, as SnapPix's figure) separated
    by grey lines and labelled with their slot index; works for any tile size (a 112 x 112 global pattern
    too). Drawn as a single image, so it costs well under a second.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    p = as_pattern_tensor(pattern).numpy()
    channels, t, sh, sw = p.shape
    cols = math.ceil(math.sqrt(t))
    rows_per_channel = math.ceil(t / cols)
    rows = rows_per_channel * channels
    mosaic = np.full((rows * (sh + 1) - 1, cols * (sw + 1) - 1), 0.5, dtype=np.float32)
    labels = []
    for c in range(channels):
        for k in range(t):
            r, q = c * rows_per_channel + k // cols, k % cols
            mosaic[r * (sh + 1):r * (sh + 1) + sh, q * (sw + 1):q * (sw + 1) + sw] = p[c, k]
            label = f"t={k}" if channels == 1 else f"c{c} t={k}"
            labels.append((q * (sw + 1) + sw / 2 - 0.5, r * (sh + 1) - 0.5, label))
    scale = 1.6 / max(sh, sw)
    fig, ax = plt.subplots(figsize=(max(3.0, mosaic.shape[1] * scale), max(3.0, mosaic.shape[0] * scale) + 0.5))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for x, y, text in labels:
        ax.text(x, y, text, ha="center", va="bottom", fontsize=7, color="tab:blue")
    ax.set_axis_off()
    ax.set_title(title or f"exposure pattern {tuple(p.shape)}, duty {float(p.mean()):.3f}", fontsize=9, pad=12)
    path = Path(path)
    tmp = path.with_name("." + path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def pattern_stats(pattern: torch.Tensor | np.ndarray) -> dict:
    """Summary numbers of a binary pattern (as in the pattern table of ``docs/methods/snappix.md``).

    Returns:
        dict with ``shape``, ``ones`` (int), ``duty`` (mean, float), ``sparsity`` (1 - duty, SnapPix's log
        name), ``ones_per_slot`` (list of T ints, summed over channels and tile) and
        ``exposures_per_pixel`` (``min``/``mean``/``max`` of the per-pixel exposure count).
    """
    p = as_pattern_tensor(pattern)
    counts = p.sum(dim=1)
    return {
        "shape": list(p.shape),
        "ones": int(p.sum()),
        "duty": float(p.mean()),
        "sparsity": 1.0 - float(p.mean()),
        "ones_per_slot": [int(v) for v in p.sum(dim=(0, 2, 3))],
        "exposures_per_pixel": {"min": int(counts.min()), "mean": float(counts.mean()), "max": int(counts.max())},
    }
