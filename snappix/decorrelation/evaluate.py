"""The decorrelation metric of a pattern on a set of windows, its heatmap, and batching of windows.

The metric is the mean |off-diagonal r| of the correlation of the coded tile pixels, pooled over *all*
tiles of *all* windows (:class:`snappix.sensor.CorrelationAccumulator`), so it does not depend on the batch
size (``docs/decorrelation_protocol.md``).
"""
from __future__ import annotations

import math
import os

import torch

from snappix.decorrelation.data import GreyClipSource, Window
from snappix.engine.logging import RunLogger
from snappix.sensor import CodedExposure, CorrelationAccumulator, decorrelation_rows, mean_abs_off_diagonal

__all__ = ["batches", "evaluate", "save_heatmap", "pattern_record"]


def batches(items: list, size: int, drop_last: bool) -> list[list]:
    """Consecutive chunks of ``size`` items (the last one shorter unless ``drop_last``)."""
    n = len(items) // size if drop_last else math.ceil(len(items) / size)
    return [items[i * size:(i + 1) * size] for i in range(n)]


@torch.no_grad()
def evaluate(sensor: torch.nn.Module, source: GreyClipSource, windows: list[Window], batch_size: int,
             tile_size: int, patch_norm: bool, device: torch.device, logger: RunLogger | None = None,
             desc: str = "val") -> tuple[float, torch.Tensor]:
    """Mean |off-diagonal r| of the coded tile pixels pooled over all tiles of all ``windows``.

    Args:
        sensor: maps a float32 clip ``(B, 1, T, S, S)`` to its coded image ``(B, 1, 1, S, S)``.
        source, windows: the clips (:meth:`GreyClipSource.batch`).
        batch_size: windows coded at once (does not change the result).
        tile_size: pattern tile side ``s``; ``patch_norm``: subtract each tile's long-exposure mean first.
        logger: shows a progress bar when given.

    Returns:
        ``(metric, R)``: the metric in [0, 1] and the ``(s*s, s*s)`` float64 correlation matrix (CPU).
    """
    was_training = sensor.training
    sensor.eval()
    acc = CorrelationAccumulator()
    chunks = batches(windows, batch_size, drop_last=False)
    for chunk in (logger.progress(chunks, desc=desc) if logger else chunks):
        clip = source.batch(chunk, device)
        acc.update(decorrelation_rows(sensor(clip), clip, tile_size, patch_norm))
    sensor.train(was_training)
    r = acc.correlation().cpu()
    return float(mean_abs_off_diagonal(r)), r


def save_heatmap(r: torch.Tensor, path: str, title: str) -> str:
    """PNG of ``|R|`` (``r``: a square float matrix; colour range 0-1), as SnapPix's ``heatmap.png``.

    Written atomically (temporary file in the same folder, then ``os.replace``). Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(r.abs().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="|r|")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("coded pixel in tile (row-major)")
    ax.set_ylabel("coded pixel in tile (row-major)")
    fig.tight_layout()
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def pattern_record(sensor: CodedExposure) -> dict:
    """``{"duty_cycle": d, "sparsity": 1 - d}`` of the sensor's current binary pattern."""
    duty = sensor.duty_cycle()
    return {"duty_cycle": duty, "sparsity": 1.0 - duty}
