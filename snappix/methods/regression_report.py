"""Scores and report files of a regression multi-view test (``run_finetuning.py --task regression``):
MSE and Pearson's r over the test videos, each video's prediction the mean of its raw outputs over all of
its windows, segments and crops (:func:`snappix.engine.multiview.merge_views`).

Files (written by rank 0 into the test folder, each under a temporary name then renamed):

* ``video_predictions.csv``: ``index, path, target, pred, views`` per scored list row;
* ``unreadable_videos.csv``: ``index, path, source`` per list row that failed to decode (left out);
* ``multiview_summary.json`` / ``.txt``: :meth:`RegressionScorer.summarize` and its text.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from snappix.engine.multiview import SUMMARY_JSON, SUMMARY_TXT, UNREADABLE_CSV, MergedViews, Scorer
from snappix.objectives.regression import regression_metrics

log = logging.getLogger(__name__)

PREDICTIONS_CSV = "video_predictions.csv"


def identity(outputs: torch.Tensor) -> torch.Tensor:
    """Per-view "scores" of a regressor: its raw outputs ``(B, 1)``."""
    return outputs


def targets_of(dataset) -> np.ndarray:
    """float64 ``(rows,)``: the ``target`` of every row of a ``reg`` dataset's list.

    Raises:
        ValueError: a row without a target (not a ``reg`` list).
    """
    if any(e.target is None for e in dataset.entries):
        raise ValueError(f"{getattr(dataset, 'data_path', '<list>')}: rows without a target: not a 'reg' list")
    return np.asarray([e.target for e in dataset.entries], dtype=np.float64)


class RegressionScorer(Scorer):
    """:class:`snappix.engine.multiview.Scorer` for one-output regressors: ``merged.scores[:, 0]`` is the
    per-video prediction, compared with ``targets[merged.index]``.

    Args:
        targets: float ``(rows,)``, the list's targets by row (:func:`targets_of`).
    """

    def __init__(self, targets: np.ndarray):
        self.targets = np.asarray(targets, dtype=np.float64).reshape(-1)

    def summarize(self, merged: MergedViews, unreadable: str = "skip") -> dict[str, Any]:
        """Keys: ``num_videos`` (scored), ``num_listed``, ``num_segments``, ``num_crops``, ``num_views``,
        ``duplicates_dropped``, ``missing_views``, ``unreadable_videos``, ``unreadable_rows``, ``mse``, ``r``
        (Pearson, over all scored videos at once). Unreadable videos are always left out (a regression has
        no "wrong" prediction to count them as)."""
        pred = merged.scores[:, 0]
        metrics = regression_metrics(pred, self.targets[merged.index])
        return {"num_videos": int(len(merged.index)), "num_listed": merged.num_listed,
                "num_segments": merged.num_segments, "num_crops": merged.num_crops,
                "num_views": int(len(merged.views["index"])), "duplicates_dropped": merged.duplicates,
                "missing_views": len(merged.missing), "unreadable_videos": len(merged.unreadable),
                "unreadable_rows": list(merged.unreadable), "mse": metrics["mse"], "r": metrics["r"]}

    def format_summary(self, summary: Mapping[str, Any], sources: Sequence[str] | None = None) -> str:
        rows = summary.get("unreadable_rows") or []
        lines = [f"Regression multi-view test: {summary['num_videos']} videos, {summary['num_views']} views "
                 f"({summary['num_segments']} segments x {summary['num_crops']} crops per window) averaged per video",
                 f"  MSE {summary['mse']:.6g}  Pearson r {summary['r']:.4f}",
                 f"  sampler padding duplicates dropped: {summary['duplicates_dropped']}; missing views: "
                 f"{summary['missing_views']}; unreadable videos (left out): {len(rows)}"]
        if rows:
            named = [sources[r] if sources is not None else f"list row {r}" for r in rows[:10]]
            lines.append(f"  WARNING: unreadable, see bad_videos.txt and {UNREADABLE_CSV}: {'; '.join(named)}")
        return "\n".join(lines)

    def write_report(self, output_dir: str, merged: MergedViews, class_names, paths, summary, sources) -> dict:
        """Write the files of the module docstring; returns ``summary`` plus ``"files"``."""
        os.makedirs(output_dir, exist_ok=True)
        files = {n: os.path.join(output_dir, n) for n in (PREDICTIONS_CSV, UNREADABLE_CSV, SUMMARY_JSON, SUMMARY_TXT)}

        def table(name: str, header: list, rows) -> None:
            tmp = f"{files[name]}.tmp.{os.getpid()}"
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)
            os.replace(tmp, files[name])

        table(PREDICTIONS_CSV, ["index", "path", "target", "pred", "views"],
              ([int(i), paths[int(i)] if paths is not None else "", repr(float(self.targets[i])), repr(float(p)),
                int(nv)] for i, p, nv in zip(merged.index, merged.scores[:, 0], merged.num_views)))
        table(UNREADABLE_CSV, ["index", "path", "source"],
              ([i, paths[i] if paths is not None else "", sources[i] if sources is not None else ""]
               for i in merged.unreadable))
        text = self.format_summary(summary, sources)
        for name, body in ((SUMMARY_TXT, text + "\n"), (SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")):
            tmp = f"{files[name]}.tmp.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, files[name])
        log.info("\n%s\n  report: %s", text, output_dir)
        return {**summary, "files": files}
