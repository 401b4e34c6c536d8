"""Run logging: ``log.txt`` (one JSON line per epoch), TensorBoard, tqdm progress, metric averaging.

Everything that writes is active on rank 0 only; :class:`MetricMeter` averages are all-reduced over
ranks at epoch end.

TensorBoard tags (``output_dir/tb`` unless ``--log_dir``): per optimiser step ``train/loss``,
``train/<objective metric>``, ``opt/lr``, ``opt/weight_decay``, ``opt/grad_norm``, ``opt/loss_scale``;
per epoch ``perf/clips_per_s``, ``perf/data_time_frac``, ``perf/transform_time_frac`` (the batch transform's
share, e.g. a frozen teacher's cost), ``data/substituted`` and the epoch means under ``epoch/<split>_<name>``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict, deque
from typing import Any, Iterable, Mapping

import torch

from .distributed import all_gather_object, is_main_process

log = logging.getLogger(__name__)

LOG_FILE = "log.txt"


def rewind_log(output_dir: str | None, start_epoch: int) -> int:
    """Drop the ``log.txt`` rows of epochs ``>= start_epoch`` (and lines cut short by a crash) before a
    resumed run redoes those epochs, so each epoch is logged once. Rank 0 only; atomic rewrite.

    A run killed after logging an epoch but before its checkpoint was saved redoes that epoch; without
    this its row would appear twice.

    Returns:
        the number of lines dropped.
    """
    if not output_dir or not is_main_process():
        return 0
    path = os.path.join(output_dir, LOG_FILE)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not line.endswith("\n") or (isinstance(row, dict) and int(row.get("epoch", -1)) >= start_epoch):
            continue
        keep.append(line)
    dropped = len(lines) - len(keep)
    if dropped:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(keep)
        os.replace(tmp, path)
        log.warning("%s: dropped %d rows of epochs >= %d, which this run redoes", path, dropped, start_epoch)
    return dropped


def _number(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.detach().float().item() if v.numel() == 1 else v.tolist()
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            pass
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v


class MetricMeter:
    """Running metrics: a smoothed window for the progress bar and exact weighted means for the epoch.

    ``update(loss=0.3, psnr=21.0, n=8)`` adds values weighted by ``n`` (the batch size);
    ``smoothed()`` gives the mean of the last ``window`` updates per metric; ``synchronize()`` merges
    the sums of all ranks (collective: call on every rank); ``averages()`` gives the weighted means.
    """

    def __init__(self, window: int = 20):
        self.window = window
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)
        self.recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=self.window))

    def update(self, n: float = 1, **metrics: float | torch.Tensor | None) -> None:
        for name, value in metrics.items():
            if value is None:
                continue
            value = float(value.detach().float().item() if isinstance(value, torch.Tensor) else value)
            self.sums[name] += value * n
            self.counts[name] += n
            self.recent[name].append(value)

    def smoothed(self) -> dict[str, float]:
        return {k: sum(d) / len(d) for k, d in self.recent.items() if d}

    def averages(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k] > 0}

    def synchronize(self) -> None:
        """Sum the per-metric sums and counts over ranks (metric names may differ between ranks)."""
        gathered = all_gather_object((dict(self.sums), dict(self.counts)))
        if len(gathered) == 1:
            return
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, float] = defaultdict(float)
        for s, c in gathered:
            for k, v in s.items():
                sums[k] += v
            for k, v in c.items():
                counts[k] += v
        self.sums, self.counts = sums, counts

    def __str__(self) -> str:
        return "  ".join(f"{k} {v:.4g}" for k, v in self.smoothed().items())


class RunLogger:
    """``log.txt`` + TensorBoard + progress bars of one run (no-ops off rank 0).

    Args:
        output_dir: where ``log.txt`` goes (``None``: no log file).
        log_dir: TensorBoard directory; default ``output_dir/tb`` (``None`` with no output_dir: off).
        enabled: write anything at all; default: this is rank 0.
        tensorboard: create a ``SummaryWriter``.
        progress: show tqdm bars.
    """

    def __init__(self, output_dir: str | None, log_dir: str | None = None, enabled: bool | None = None,
                 tensorboard: bool = True, progress: bool = True):
        self.enabled = is_main_process() if enabled is None else enabled
        self.output_dir = output_dir
        self.log_dir = log_dir or (os.path.join(output_dir, "tb") if output_dir else None)
        self.show_progress = progress and self.enabled
        self.writer = None
        if self.enabled and tensorboard and self.log_dir:
            from torch.utils.tensorboard import SummaryWriter
            os.makedirs(self.log_dir, exist_ok=True)
            self.writer = SummaryWriter(log_dir=self.log_dir)
        if self.enabled and output_dir:
            os.makedirs(output_dir, exist_ok=True)

    @property
    def log_path(self) -> str | None:
        return os.path.join(self.output_dir, LOG_FILE) if self.output_dir else None

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Write scalar values to TensorBoard as ``prefix/name`` (None and non-numbers skipped)."""
        if self.writer is None:
            return
        for name, v in values.items():
            v = _number(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{prefix}/{name}" if prefix else name, v, step)

    def log_epoch(self, epoch: int, stats: Mapping[str, Any] | None = None, **splits: Mapping[str, Any]) -> dict:
        """Append one JSON line to ``log.txt`` and write the epoch means to TensorBoard.

        ``log_epoch(3, train={"loss": .5}, val={"psnr": 20.1}, stats={"n_parameters": 1e6})`` writes
        ``{"train_loss": 0.5, "val_psnr": 20.1, "n_parameters": 1000000.0, "epoch": 3}`` (VideoMAE's
        key style). Returns the record.
        """
        record: dict[str, Any] = {}
        for split, values in splits.items():
            record.update({f"{split}_{k}": _number(v) for k, v in (values or {}).items()})
        record.update({k: _number(v) for k, v in (stats or {}).items()})
        record["epoch"] = int(epoch)
        if not self.enabled:
            return record
        if self.log_path:
            line = json.dumps(record) + "\n"
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        self.scalars({k: v for k, v in record.items() if k != "epoch"}, epoch, prefix="epoch")
        self.flush()
        return record

    def progress(self, iterable: Iterable, total: int | None = None, desc: str = ""):
        """``tqdm(iterable)`` on rank 0 when progress is on, else the iterable itself."""
        if not self.show_progress:
            return iterable
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False)

    def progress_bar(self, total: int | None, desc: str = ""):
        """A manually updated tqdm bar on rank 0 when progress is on, else ``None``."""
        if not self.show_progress:
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
