"""True multi-view testing: every (segment, crop) view of every test video, merged per list row.

The field's protocol (VideoMAE, VideoMamba): a test video gives ``test_num_segment x test_num_crop``
views (``VideoClsDataset(mode="test")``); each view's logits go through a softmax and the per-video
prediction is the mean of those probabilities. SnapPix passed ``--test_num_segment 2 --test_num_crop 3``
but never ran the multi-view test (its "precise val" numbers are 1 clip x 1 crop, ``docs/methods/snappix.md`` §6,
defect 10); VideoMAE(v2) writes per-rank text files, keys videos by ``basename.split('.')[0]`` (two
``a/x.mp4`` and ``b/x.mp4`` rows collapse into one), and VideoMamba's ``merge`` dedups on
``(chunk, crop)`` only, dropping distinct windows of one video. Here:

* views are gathered in memory (:func:`gather_views`, ``all_gather_object``) -- no side files, no
  barrier needed in a single process;
* videos are keyed by the **list row** ``index``, never by file name, and a view by
  ``(index, segment, crop)``; only exact repeats of the same key are dropped (``DistributedSampler``
  pads the last ranks with repeats of the first items), distinct views are never merged away;
* an unreadable test video (the dataset substituted another row for it) is named, left out of the
  scores (or counted as a miss: ``--test_unreadable wrong``) and listed in ``unreadable_videos.csv``;
  every other missing view is a sampling bug, reported as an error unless ``allow_missing``;
* three accuracies are reported and named so they cannot be confused (the per-clip number VideoMAE
  logs as "accuracy on N test videos" is N = videos x views):

  - **video-level top-1 / top-5**: the mean softmax over the ``S x C`` views of each video, ranked;
    averaged over videos. This is the number papers report as "S clips x C crops".
  - **clip-level top-1**: the mean over all views of per-view correctness (argmax of one view's
    scores equals the label); every view counts once.
  - **single-view top-1**: only the view ``(segment (S-1)//2, crop (C-1)//2)`` of each video -- the
    middle segment for odd ``S`` (the earlier of the two middle ones for even ``S``) and the centre
    crop for odd ``C``; comparable to a 1-clip x 1-crop validation.

Accuracies are percentages (0-100). Per-view records are columns of numpy arrays (``index``,
``segment``, ``crop``, ``label`` int64, ``substituted`` bool, ``scores`` float32 ``(N, K)`` softmax);
after gathering every rank holds all of them (``N x K x 4`` bytes, e.g. 19,796 K400 videos x 15 views x
400 classes = 475 MB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .distributed import all_gather_object, is_main_process
from .loader_guard import loader_errors
from .logging import RunLogger
from .loop import forward, move_to_device
from .multiview_report import (SUMMARY_JSON, SUMMARY_TXT, UNREADABLE_CSV, format_summary, summarize,
                               video_metrics, write_report)
from .precision import autocast

log = logging.getLogger(__name__)

__all__ = ["MergedViews", "MissingViewsError", "SUMMARY_JSON", "SUMMARY_TXT", "UNREADABLE_CSV",
           "collect_view_scores", "format_summary", "gather_views", "merge_views", "multiview_test", "summarize",
           "video_metrics", "write_report"]

#: integer columns of a view record (plus ``substituted`` bool and ``scores`` float32 (N, K))
VIEW_COLUMNS = ("index", "segment", "crop", "label")
#: optional int64 column: the list row a view was asked for (differs from ``index`` when the dataset put a
#: readable row in place of an unreadable video); absent means ``index``
REQUESTED = "requested"


class MissingViewsError(ValueError):
    """Some (index, segment, crop) views of the test set never arrived; ``.missing`` lists them."""

    def __init__(self, message: str, missing: list[tuple[int, int, int]]):
        super().__init__(message)
        self.missing = missing


# ---------------------------------------------------------------------------------------------------
# collection and gathering
# ---------------------------------------------------------------------------------------------------
def _column(batch: Mapping[str, Any], key: str, n: int, default: int | None = None) -> np.ndarray:
    if key not in batch:
        if default is None:
            raise KeyError(f"multi-view test batches need {key!r} (VideoClsDataset(mode='test') provides "
                           f"index, label, segment, crop); got keys {sorted(batch)}")
        return np.full(n, default, dtype=np.int64)
    return torch.as_tensor(batch[key]).reshape(-1).cpu().numpy().astype(np.int64)


def _empty_records(num_classes: int = 0) -> dict[str, np.ndarray]:
    out = {k: np.zeros(0, dtype=np.int64) for k in (*VIEW_COLUMNS, REQUESTED)}
    out["substituted"] = np.zeros(0, dtype=bool)
    out["scores"] = np.zeros((0, num_classes), dtype=np.float32)
    return out


def _concat(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(p["index"])]
    if not parts:
        return _empty_records()
    widths = {p["scores"].shape[1] for p in parts}
    if len(widths) != 1:
        raise ValueError(f"view records disagree on the number of classes: {sorted(widths)}")
    out = {k: np.concatenate([p[k] for p in parts]) for k in (*VIEW_COLUMNS, "substituted", "scores")}
    out[REQUESTED] = np.concatenate([np.asarray(p.get(REQUESTED, p["index"])) for p in parts]).astype(np.int64)
    return out


@torch.no_grad()
def collect_view_scores(model: nn.Module, loader: Iterable, device: torch.device | str, precision: str = "bf16",
                        logger: RunLogger | None = None, model_inputs: Sequence[str] = (),
                        max_batches: int | None = None) -> dict[str, np.ndarray]:
    """Softmax scores of every view this rank sees.

    Args:
        model: a classifier ``video (B, C, T, H, W) -> logits (B, K)`` (or a mapping with ``"logits"``),
            possibly DDP-wrapped; run in eval mode (its train/eval state is restored afterwards).
        loader: batches with ``video``, ``label``, ``index`` (list row) and, for multi-view, ``segment``
            and ``crop`` (absent: 0, i.e. single-view validation data); ``substituted`` and ``requested``
            (the row asked for, when ``index`` is a substitute) optional.
        device, precision: where and in which autocast precision (``bf16``/``fp16``/``fp32``) to run;
            the softmax is taken in float32.
        max_batches: stop after this many batches (smoke tests).

    Returns:
        Records of this rank only: ``index``, ``segment``, ``crop``, ``label``, ``requested`` int64 ``(N,)``,
        ``substituted`` bool ``(N,)``, ``scores`` float32 ``(N, K)`` (rows sum to 1), in loader order.
    """
    was_training = model.training
    model.eval()
    logger = logger or RunLogger(None, enabled=False)
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    parts = []
    try:
        with loader_errors(loader):  # a dead / hung worker is reported with its item
            for i, batch in enumerate(logger.progress(loader, total=total, desc="multi-view test")):
                if max_batches is not None and i >= max_batches:
                    break
                n = int(batch["video"].shape[0])
                cols = {"index": _column(batch, "index", n), "label": _column(batch, "label", n),
                        "segment": _column(batch, "segment", n, 0), "crop": _column(batch, "crop", n, 0)}
                cols[REQUESTED] = _column(batch, REQUESTED, n) if REQUESTED in batch else cols["index"]
                sub = batch.get("substituted")
                cols["substituted"] = (np.zeros(n, dtype=bool) if sub is None
                                       else torch.as_tensor(sub).reshape(-1).cpu().numpy().astype(bool))
                batch = move_to_device(batch, device)
                with autocast(device, precision):
                    outputs = forward(model, batch, model_inputs)
                logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
                cols["scores"] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                parts.append(cols)
    finally:
        model.train(was_training)
    return _concat(parts)


def gather_views(records: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The records of all ranks concatenated in rank order (collective: call on every rank).

    In a single process (no process group) the records come back as they are.
    """
    return _concat(all_gather_object({k: np.asarray(v) for k, v in records.items()}))


# ---------------------------------------------------------------------------------------------------
# merging and metrics
# ---------------------------------------------------------------------------------------------------
@dataclass
class MergedViews:
    """Per-video predictions merged from per-view softmax scores (see :func:`merge_views`).

    Attributes:
        index: int64 ``(V,)`` list rows of the scored videos, ascending (all rows ``0..num_videos-1``
            unless ``allow_missing`` dropped videos without any view).
        scores: float64 ``(V, K)`` mean softmax over each video's views.
        labels: int64 ``(V,)``.
        num_views: int64 ``(V,)`` views averaged per video.
        views: the de-duplicated per-view records, sorted by ``(index, segment, crop)``.
        num_segments, num_crops: the view grid ``S x C``.
        duplicates: exact repeats of an ``(index, segment, crop)`` key that were dropped.
        missing: ``(index, segment, crop)`` views that never arrived (only with ``allow_missing``).
        num_listed: videos in the list (``num_videos`` passed to :func:`merge_views`).
        unreadable: list rows (ascending) whose video failed to decode in at least one view; none of
            their views is scored (the dataset logged each to ``bad_videos.txt``).
    """

    index: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    num_views: np.ndarray
    views: dict[str, np.ndarray]
    num_segments: int
    num_crops: int
    duplicates: int = 0
    missing: list[tuple[int, int, int]] = field(default_factory=list)
    num_listed: int = 0
    unreadable: list[int] = field(default_factory=list)

    @property
    def views_per_video(self) -> int:
        return self.num_segments * self.num_crops

    @property
    def single_view(self) -> tuple[int, int]:
        """The ``(segment, crop)`` scored as "single view": ``((S-1)//2, (C-1)//2)``."""
        return (self.num_segments - 1) // 2, (self.num_crops - 1) // 2


def _grid(records: Mapping[str, np.ndarray], views_per_video: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(views_per_video, (tuple, list)):
        s, c = (int(v) for v in views_per_video)
    else:
        s = int(records["segment"].max()) + 1
        c = int(records["crop"].max()) + 1
        if s * c != int(views_per_video):
            raise ValueError(f"the views span a {s} x {c} (segment x crop) grid, not {views_per_video} views per "
                             f"video; pass views_per_video=(num_segments, num_crops)")
    if s < 1 or c < 1:
        raise ValueError(f"the view grid must be at least 1 x 1, got {s} x {c}")
    return s, c


def merge_views(records: Mapping[str, np.ndarray], num_videos: int, views_per_video: int | tuple[int, int],
                allow_missing: bool = False) -> MergedViews:
    """Average the softmax scores of each video's views, keyed by list row.

    Args:
        records: gathered view records (:func:`collect_view_scores` -> :func:`gather_views`), any order.
        num_videos: rows in the test list; ``index`` must lie in ``[0, num_videos)``.
        views_per_video: ``(num_segments, num_crops)`` (preferred: every ``(segment, crop)`` of the grid
            is expected), or their product (the grid is then inferred from the largest segment/crop).
        allow_missing: score the views that did arrive (warn) instead of raising
            :class:`MissingViewsError`; videos without any view are left out of ``index``/``scores``.

    Rules: a video is its list row ``index`` (file names play no part, so equal names in different
    folders stay separate); a view is ``(index, segment, crop)``; exact repeats of a view (sampler
    padding) are dropped keeping the first in gathered order; distinct views are never merged away.
    A view whose ``requested`` row differs from its ``index`` stands in for an unreadable video: that
    video (all of its views, even those that decoded) and the stand-in view are left out, and the row is
    listed in :attr:`MergedViews.unreadable` instead of counting as missing.
    Views are summed in ``(index, segment, crop)`` order in float64, so the result does not depend on
    how the views were spread over ranks.

    Returns:
        :class:`MergedViews`.

    Raises:
        ValueError: no records; an index, segment, crop or label out of range; views of one video
            with different labels; an int ``views_per_video`` that does not match the observed grid.
        MissingViewsError: views missing and not ``allow_missing`` (the message lists the first 10).
    """
    if records is None or len(records["index"]) == 0:
        raise ValueError("no view records to merge: the test loader produced nothing")
    cols = {k: np.asarray(records[k]).astype(np.int64).reshape(-1) for k in VIEW_COLUMNS}
    scores = np.asarray(records["scores"])
    substituted = np.asarray(records.get("substituted", np.zeros(len(cols["index"]), bool))).astype(bool)
    requested = np.asarray(records.get(REQUESTED, cols["index"])).astype(np.int64).reshape(-1)
    unreadable = np.unique(requested[requested != cols["index"]])
    if len(unreadable):  # stand-ins and every view of a video that failed somewhere are left out
        keep = (requested == cols["index"]) & ~np.isin(cols["index"], unreadable)
        cols = {k: v[keep] for k, v in cols.items()}
        scores, substituted = scores[keep], substituted[keep]
        if len(cols["index"]) == 0:
            raise ValueError(f"no readable test video: all {len(unreadable)} video(s) seen failed to decode "
                             f"(see bad_videos.txt)")
    n = len(cols["index"])
    if scores.ndim != 2 or scores.shape[0] != n or any(len(v) != n for v in cols.values()):
        raise ValueError(f"inconsistent records: {n} indices, scores {scores.shape}, "
                         f"{ {k: len(v) for k, v in cols.items()} }")
    num_classes = scores.shape[1]
    s, c = _grid(cols, views_per_video)
    for key, hi in (("index", num_videos), ("segment", s), ("crop", c), ("label", num_classes)):
        bad = (cols[key] < 0) | (cols[key] >= hi)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} view(s) with {key} outside [0, {hi}), e.g. {int(cols[key][bad][0])}")

    keys = np.stack([cols["index"], cols["segment"], cols["crop"]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)  # lexicographic order; first occurrence kept
    duplicates = n - len(first)
    views = {k: v[first] for k, v in cols.items()}
    views["substituted"] = substituted[first]
    views["scores"] = scores[first].astype(np.float32, copy=False)

    vids, starts, counts = np.unique(views["index"], return_index=True, return_counts=True)
    group_labels = views["label"][starts]
    clash = np.repeat(group_labels, counts) != views["label"]
    if clash.any():
        bad_vid = int(views["index"][clash][0])
        raise ValueError(f"views of list row {bad_vid} carry different labels "
                         f"{sorted(set(views['label'][views['index'] == bad_vid].tolist()))}")

    present = np.zeros((num_videos, s * c), dtype=bool)
    present[views["index"], views["segment"] * c + views["crop"]] = True
    present[unreadable] = True  # reported as unreadable, not as missing
    missing = [(int(v), int(slot) // c, int(slot) % c) for v, slot in np.argwhere(~present)]
    if missing:
        absent = num_videos - len(vids) - len(unreadable)
        msg = (f"{len(missing)} of {num_videos * s * c} views missing ({num_videos} videos x {s} segments x "
               f"{c} crops; {absent} video(s) without any view), e.g. (index, segment, crop) "
               f"{missing[:10]}. The test loader must cover the whole test set once (DistributedSampler with "
               f"drop_last=False); unreadable videos are reported separately, so this is a bug in the sampling.")
        if not allow_missing:
            raise MissingViewsError(msg, missing)
        log.warning("%s Scoring the views present.", msg)

    sums = np.add.reduceat(views["scores"].astype(np.float64), starts, axis=0)
    return MergedViews(index=vids.astype(np.int64), scores=sums / counts[:, None], labels=group_labels,
                       num_views=counts.astype(np.int64), views=views, num_segments=s, num_crops=c,
                       duplicates=int(duplicates), missing=missing, num_listed=int(num_videos),
                       unreadable=[int(v) for v in unreadable])


# ---------------------------------------------------------------------------------------------------
# one call for entry points
# ---------------------------------------------------------------------------------------------------
def multiview_test(model: nn.Module, loader: Any, device: torch.device | str, precision: str = "bf16",
                   num_videos: int | None = None, views_per_video: int | tuple[int, int] | None = None,
                   output_dir: str | None = None, class_names: Sequence[str] | None = None,
                   paths: Sequence[str] | None = None, logger: RunLogger | None = None, epoch: int | None = None,
                   allow_missing: bool = False, unreadable: str = "skip") -> dict[str, Any]:
    """Collect, gather, merge, score and report a multi-view test (collective: call on every rank).

    The loader must cover the whole test set once (``DistributedSampler(shuffle=False, drop_last=False)``
    pads with repeats, which are dropped). ``num_videos`` / ``views_per_video`` / ``paths`` default to
    the loader's ``VideoClsDataset`` (``len(entries)``, ``(test_num_segment, test_num_crop)``, the
    list's relative paths). Rank 0 writes :func:`write_report` into ``output_dir`` (when given) and,
    with a ``logger``, appends ``test_*`` numbers to ``log.txt`` at ``epoch``.

    An unreadable test video (the dataset substituted another row for it, logging it to
    ``bad_videos.txt``) is named in the summary and in ``unreadable_videos.csv``; ``unreadable="skip"``
    leaves it out of the accuracies, ``"wrong"`` counts it as a miss (:func:`summarize`).

    Returns:
        :func:`summarize`'s dict, identical on every rank.

    Raises:
        MissingViewsError / ValueError: as :func:`merge_views`, on every rank alike.
    """
    dataset = getattr(loader, "dataset", None)
    if (num_videos is None or views_per_video is None) and not hasattr(dataset, "entries"):
        raise ValueError("pass num_videos and views_per_video: the loader's dataset is not a VideoClsDataset")
    if num_videos is None:
        num_videos = len(dataset.entries)
    if views_per_video is None:
        views_per_video = (dataset.test_num_segment, dataset.test_num_crop)
    sources = None
    if dataset is not None and hasattr(dataset, "entries"):
        paths = paths if paths is not None else [e.rel_path for e in dataset.entries]
        where = getattr(dataset, "data_path", "<list>")
        sources = [f"{e.path} ({where}:{e.line_no})" for e in dataset.entries]
    records = gather_views(collect_view_scores(model, loader, device, precision, logger))
    merged = merge_views(records, num_videos, views_per_video, allow_missing=allow_missing)
    summary = summarize(merged, unreadable)
    if is_main_process():
        if output_dir:
            write_report(output_dir, merged, class_names, paths, summary, sources)
        else:
            log.info("\n%s", format_summary(summary, sources))
        if logger is not None and epoch is not None:
            logger.log_epoch(epoch, test={k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary
