"""Scores and report files of a multi-view test (:mod:`snappix.engine.multiview` merges the views).

* :func:`video_metrics` / :func:`summarize` / :func:`format_summary`: the headline numbers (percent);
* :func:`write_report`: ``per_class_accuracy.csv``, ``confusion_matrix.csv/.png``, ``video_predictions.csv``,
  ``unreadable_videos.csv`` and the summary (``multiview_summary.json`` / ``.txt``).

Unreadable test videos (a decode failure, see ``bad_videos.txt``) are left out of the scores by default
(``unreadable="skip"``) or counted as wrong predictions (``unreadable="wrong"``, ``--test_unreadable wrong``):
then every accuracy is taken over all listed videos (views), the unreadable ones scoring 0.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from .multiview import MergedViews

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_JSON", "SUMMARY_TXT", "UNREADABLE_CSV", "format_summary", "summarize", "video_metrics",
           "write_report"]

SUMMARY_JSON = "multiview_summary.json"
SUMMARY_TXT = "multiview_summary.txt"
UNREADABLE_CSV = "unreadable_videos.csv"

def _topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Bool ``(N,)``: label among the ``k`` best scores (stable ranking: ties go to the lower class)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (order == labels.reshape(-1, 1)).any(axis=1)


def video_metrics(scores: np.ndarray, labels: np.ndarray, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in percent (0-100) over rows: ``{"top1": ..., "top5": ...}``.

    Args:
        scores: ``(N, K)`` per-video scores (e.g. :attr:`MergedViews.scores`); only ranking matters,
            ties rank the lower class index first. ``k > K`` counts as ``k = K``.
        labels: int ``(N,)`` in ``[0, K)``.

    Returns:
        ``{"top{k}": percent}`` for each ``k``; ``nan`` for ``N = 0``.
    """
    scores, labels = np.asarray(scores), np.asarray(labels).reshape(-1)
    if len(labels) == 0:
        return {f"top{k}": float("nan") for k in topk}
    return {f"top{k}": float(_topk_hits(scores, labels, k).mean() * 100.0) for k in topk}


UNREADABLE_POLICIES = ("skip", "wrong")


def summarize(merged: MergedViews, unreadable: str = "skip") -> dict[str, Any]:
    """The headline numbers of a multi-view test (all accuracies in percent).

    Args:
        unreadable: ``"skip"``: accuracies over the scored videos only; ``"wrong"``: the
            :attr:`MergedViews.unreadable` videos count as misses (video-level over all scored + unreadable
            videos, clip-level over their views too, single-view over one view each).

    Keys: ``num_videos`` (scored), ``num_listed``, ``num_segments``, ``num_crops``, ``views_per_video``,
    ``num_views`` (distinct views merged), ``duplicates_dropped``, ``missing_views``,
    ``substituted_views``, ``unreadable_videos`` (count), ``unreadable_rows`` (list rows),
    ``unreadable_policy``, ``video_top1``, ``video_top5``, ``clip_top1``, ``single_view`` ([segment, crop]),
    ``single_view_videos`` (views scored as single view: one per video, or per window of a long video),
    ``single_view_top1``, ``num_windows`` (distinct ``(row, window)`` pairs scored; ``num_videos`` unless
    the test set was cut into windows).

    Raises:
        ValueError: an unknown ``unreadable`` policy.
    """
    if unreadable not in UNREADABLE_POLICIES:
        raise ValueError(f"unreadable must be one of {UNREADABLE_POLICIES}, got {unreadable!r}")
    views = merged.views
    video = video_metrics(merged.scores, merged.labels, (1, 5))
    per_view = _topk_hits(views["scores"], views["label"], 1)
    seg, crop = merged.single_view
    centre = (views["segment"] == seg) & (views["crop"] == crop)
    n_bad = len(merged.unreadable) if unreadable == "wrong" else 0

    def share(hits: np.ndarray, extra: int) -> float:  # percent correct, ``extra`` misses added
        total = len(hits) + extra
        return float(hits.sum() * 100.0 / total) if total else float("nan")

    n_videos = len(merged.index)
    windows = views.get("window", np.zeros(len(views["index"]), np.int64))
    num_windows = len(np.unique(np.stack([views["index"], windows], axis=1), axis=0)) if len(windows) else 0
    return {
        "num_videos": int(n_videos), "num_listed": merged.num_listed,
        "num_segments": merged.num_segments, "num_crops": merged.num_crops,
        "views_per_video": merged.views_per_video, "num_views": int(len(views["index"])),
        "duplicates_dropped": merged.duplicates, "missing_views": len(merged.missing),
        "substituted_views": int(views["substituted"].sum()),
        "unreadable_videos": len(merged.unreadable), "unreadable_rows": list(merged.unreadable),
        "unreadable_policy": unreadable,
        "video_top1": (video["top1"] * n_videos / (n_videos + n_bad) if n_bad else video["top1"]),
        "video_top5": (video["top5"] * n_videos / (n_videos + n_bad) if n_bad else video["top5"]),
        "clip_top1": share(per_view, n_bad * merged.views_per_video),
        "single_view": [seg, crop], "single_view_videos": int(centre.sum()),
        "single_view_top1": share(per_view[centre], n_bad), "num_windows": int(num_windows),
    }


def format_summary(summary: Mapping[str, Any], sources: Sequence[str] | None = None) -> str:
    """Human-readable multi-line text of :func:`summarize`'s dict.

    Args:
        sources: ``path (list:line)`` per list row, to name the unreadable videos (first 10).
    """
    s, c = summary["num_segments"], summary["num_crops"]
    seg, crop = summary["single_view"]
    n_win = summary.get("num_windows", summary["num_videos"])
    per = n_win != summary["num_videos"]  # long videos cut into windows
    head = f"{summary['num_videos']} videos, {n_win} windows" if per else f"{summary['num_videos']} videos"
    lines = [
        f"Multi-view test: {head} x {summary['views_per_video']} views "
        f"({s} segments x {c} crops) = {summary['num_views']} views merged",
        f"  sampler padding duplicates dropped: {summary['duplicates_dropped']}; missing views: "
        f"{summary['missing_views']}; unreadable videos: {summary.get('unreadable_videos', 0)}",
        f"  video-level (mean softmax over {'all' if per else summary['views_per_video']} views): "
        f"top-1 {summary['video_top1']:.3f}  top-5 {summary['video_top5']:.3f}",
        f"  clip-level (mean over all views of per-view correctness): top-1 {summary['clip_top1']:.3f}",
        f"  single-view (segment {seg}, crop {crop}; {summary['single_view_videos']} "
        f"{'windows' if per else 'videos'}): "
        f"top-1 {summary['single_view_top1']:.3f}",
    ]
    rows = summary.get("unreadable_rows") or []
    if rows:
        how = ("counted as wrong predictions in every accuracy" if summary.get("unreadable_policy") == "wrong"
               else "left out of every accuracy (--test_unreadable wrong counts them as misses)")
        named = [sources[r] if sources is not None else f"list row {r}" for r in rows[:10]]
        more = f" ... and {len(rows) - 10} more" if len(rows) > 10 else ""
        lines.insert(1, f"  WARNING: {len(rows)} unreadable test video(s) {how}; see bad_videos.txt and "
                        f"{UNREADABLE_CSV}: {'; '.join(named)}{more}")
    absent = summary.get("num_listed", summary["num_videos"]) - summary["num_videos"] - len(rows)
    if absent > 0:
        lines.insert(1, f"  WARNING: {absent} listed video(s) had no view and are not scored")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# report files
# ---------------------------------------------------------------------------------------------------
def _class_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None:
        return [str(k) for k in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    return [str(x) for x in class_names]


def _plot_confusion(path: str, matrix: np.ndarray, names: list[str], title: str) -> None:
    """Row-normalised confusion matrix as a PNG; sized and labelled to stay readable up to ~100 classes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    support = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, support, out=np.zeros(matrix.shape, dtype=np.float64), where=support > 0)
    side = float(min(max(4.0, 0.13 * k + 2.5), 22.0))
    fig = Figure(figsize=(side + 1.2, side), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    step = max(1, math.ceil(k / 50))  # at most ~50 labelled ticks per axis
    ticks = np.arange(0, k, step)
    spacing_pt = side * 0.75 * 72.0 / len(ticks)  # room per label along the axis, in points
    fontsize = float(min(9.0, max(4.0, 0.7 * spacing_pt)))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=90, fontsize=fontsize)
    ax.set_yticklabels([names[i] for i in ticks], fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    if k <= 12:  # small matrices: print the values
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] < 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)


@contextmanager
def _atomic_text(path: str) -> Iterator[Any]:
    """Open ``path`` for text writing under a temporary name; renamed into place only when complete."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_report(output_dir: str, merged: MergedViews, class_names: Sequence[str] | None = None,
                 paths: Sequence[str] | None = None, summary: Mapping[str, Any] | None = None,
                 sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the multi-view report into ``output_dir`` and log the summary (call on one rank only).

    Files:
        * ``per_class_accuracy.csv``: ``class_id, class, support, correct, top1`` (video-level top-1 in
          percent; empty for classes without test videos).
        * ``confusion_matrix.csv``: video-level counts, rows = true class, columns = predicted class,
          first row/column the class names.
        * ``confusion_matrix.png``: the same, each row normalised by its support.
        * ``video_predictions.csv``: ``index, path, label, pred, pred_score, label_score, correct, views``
          per scored list row (``path`` empty without ``paths``).
        * ``unreadable_videos.csv``: ``index, path, source`` per unreadable list row (header only when
          every video decoded).
        * ``multiview_summary.json`` / ``multiview_summary.txt``: :func:`summarize` and :func:`format_summary`.

    Every file is written under a temporary name and renamed when complete.

    Args:
        class_names: ``K`` names (default: the class indices).
        paths: the list's paths by row (e.g. ``[e.rel_path for e in dataset.entries]``); only for the
            predictions file -- merging never uses names.
        summary: a precomputed :func:`summarize` result.
        sources: ``path (list:line)`` by row, naming the unreadable videos.

    Returns:
        The summary dict, plus ``"files"``: the paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    summary = dict(summary or summarize(merged))
    k = merged.scores.shape[1]
    names = _class_names(k, class_names)
    pred = np.argsort(-merged.scores, axis=1, kind="stable")[:, 0]
    labels = merged.labels
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, pred), 1)
    files = {name: os.path.join(output_dir, name) for name in
             ("per_class_accuracy.csv", "confusion_matrix.csv", "confusion_matrix.png", "video_predictions.csv",
              UNREADABLE_CSV, SUMMARY_JSON, SUMMARY_TXT)}

    with _atomic_text(files["per_class_accuracy.csv"]) as f:
        w = csv.writer(f)
        w.writerow(["class_id", "class", "support", "correct", "top1"])
        for cls in range(k):
            support, correct = int(matrix[cls].sum()), int(matrix[cls, cls])
            w.writerow([cls, names[cls], support, correct, f"{100.0 * correct / support:.4f}" if support else ""])

    with _atomic_text(files["confusion_matrix.csv"]) as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *names])
        for cls in range(k):
            w.writerow([names[cls], *matrix[cls].tolist()])

    with _atomic_text(files["video_predictions.csv"]) as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "label", "pred", "pred_score", "label_score", "correct", "views"])
        rows = np.arange(len(labels))
        for i, idx, lab, p, ps, ls, nv in zip(rows, merged.index, labels, pred, merged.scores[rows, pred],
                                               merged.scores[rows, labels], merged.num_views):
            w.writerow([int(idx), paths[int(idx)] if paths is not None else "", int(lab), int(p), f"{ps:.6f}",
                        f"{ls:.6f}", int(lab == p), int(nv)])

    with _atomic_text(files[UNREADABLE_CSV]) as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "source"])
        for idx in merged.unreadable:
            w.writerow([idx, paths[idx] if paths is not None else "", sources[idx] if sources is not None else ""])

    png_tmp = files["confusion_matrix.png"][:-4] + f".tmp{os.getpid()}.png"
    _plot_confusion(png_tmp, matrix, names,
                    f"video-level confusion ({summary['num_videos']} videos, {merged.num_segments}x"
                    f"{merged.num_crops} views, top-1 {summary['video_top1']:.2f}%)")
    os.replace(png_tmp, files["confusion_matrix.png"])

    text = format_summary(summary, sources)
    with _atomic_text(files[SUMMARY_TXT]) as f:
        f.write(text + "\n")
    with _atomic_text(files[SUMMARY_JSON]) as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    log.info("\n%s\n  report: %s", text, output_dir)
    return {**summary, "files": files}
