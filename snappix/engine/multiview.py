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
  ``(index, window, segment, crop)`` (``window``: the sliding window of a long video,
  :class:`snappix.data.windowed.WindowedVideoDataset`; 0 otherwise); every window of a video is averaged
  into its prediction; only exact repeats of the same key are dropped (``DistributedSampler``
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

__all__ = ["MergedViews", "MissingViewsError", "Scorer", "SUMMARY_JSON", "SUMMARY_TXT", "UNREADABLE_CSV",
           "collect_view_scores", "format_summary", "gather_views", "merge_views", "multiview_test", "summarize",
           "video_metrics", "write_report"]

#: integer columns of a view record (plus ``substituted`` bool and ``scores`` float32 (N, K)); ``window`` and
#: ``label`` default to 0 when batches lack them (a regression dataset has no label)
VIEW_COLUMNS = ("index", "window", "segment", "crop", "label")
#: optional int64 column: the list row a view was asked for (differs from ``index`` when the dataset put a
#: readable row in place of an unreadable video); absent means ``index``
REQUESTED = "requested"


class MissingViewsError(ValueError):
    """Some views of the test set never arrived; ``.missing`` lists them as ``(index, segment, crop)``, or
    ``(index, window, segment, crop)`` when some video has more than one window."""

    def __init__(self, message: str, missing: list[tuple[int, ...]]):
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
    out = {k: np.concatenate([np.asarray(p[k]) if k in p else np.zeros(len(p["index"]), np.int64) for p in parts])
           for k in (*VIEW_COLUMNS, "substituted", "scores")}
    out[REQUESTED] = np.concatenate([np.asarray(p.get(REQUESTED, p["index"])) for p in parts]).astype(np.int64)
    return out


@torch.no_grad()
def collect_view_scores(model: nn.Module, loader: Iterable, device: torch.device | str, precision: str = "bf16",
                        logger: RunLogger | None = None, model_inputs: Sequence[str] = (),
                        max_batches: int | None = None, score_fn=None) -> dict[str, np.ndarray]:
    """Scores (by default the softmax) of every view this rank sees.

    Args:
        model: a classifier ``video (B, C, T, H, W) -> logits (B, K)`` (or a mapping with ``"logits"``),
            possibly DDP-wrapped; run in eval mode (its train/eval state is restored afterwards).
        loader: batches with ``video``, ``label``, ``index`` (list row) and, for multi-view, ``segment``
            and ``crop`` (absent: 0, i.e. single-view validation data); ``substituted`` and ``requested``
            (the row asked for, when ``index`` is a substitute) optional.
        device, precision: where and in which autocast precision (``bf16``/``fp16``/``fp32``) to run;
            the softmax is taken in float32.
        max_batches: stop after this many batches (smoke tests).
        score_fn: ``float32 logits (B, K) -> scores (B, K)`` (default: softmax over the last axis; a
            regressor passes the identity, its "scores" are then the predicted values).

    Returns:
        Records of this rank only: ``index``, ``window``, ``segment``, ``crop``, ``label``, ``requested`` int64
        ``(N,)``, ``substituted`` bool ``(N,)``, ``scores`` float32 ``(N, K)``, in loader order.
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
                cols = {"index": _column(batch, "index", n), "label": _column(batch, "label", n, 0),
                        "window": _column(batch, "window", n, 0), "segment": _column(batch, "segment", n, 0),
                        "crop": _column(batch, "crop", n, 0)}
                cols[REQUESTED] = _column(batch, REQUESTED, n) if REQUESTED in batch else cols["index"]
                sub = batch.get("substituted")
                cols["substituted"] = (np.zeros(n, dtype=bool) if sub is None
                                       else torch.as_tensor(sub).reshape(-1).cpu().numpy().astype(bool))
                batch = move_to_device(batch, device)
                with autocast(device, precision):
                    outputs = forward(model, batch, model_inputs)
                logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
                scores = (score_fn or _softmax)(logits.float().reshape(n, -1))
                cols["scores"] = scores.detach().float().cpu().numpy()
                parts.append(cols)
    finally:
        model.train(was_training)
    return _concat(parts)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


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
                allow_missing: bool = False, windows: Sequence[int] | None = None) -> MergedViews:
    """Average the scores of each video's views (every window, segment and crop), keyed by list row.

    Args:
        records: gathered view records (:func:`collect_view_scores` -> :func:`gather_views`), any order.
        num_videos: rows in the test list; ``index`` must lie in ``[0, num_videos)``.
        views_per_video: ``(num_segments, num_crops)`` per window (preferred: every ``(segment, crop)`` of
            the grid is expected), or their product (the grid is then inferred from the largest segment/crop).
        allow_missing: score the views that did arrive (warn) instead of raising
            :class:`MissingViewsError`; videos without any view are left out of ``index``/``scores``.
        windows: windows per list row (``WindowedVideoDataset.windows_per_row``); default one each.

    Rules: a video is its list row ``index`` (file names play no part, so equal names in different
    folders stay separate); a view is ``(index, window, segment, crop)``; exact repeats of a view (sampler
    padding) are dropped keeping the first in gathered order; distinct views -- distinct windows of one
    video included -- are never merged away: the video's score is the mean over all of them.
    A view whose ``requested`` row differs from its ``index`` stands in for an unreadable video: that
    video (all of its views, even those that decoded) and the stand-in view are left out, and the row is
    listed in :attr:`MergedViews.unreadable` instead of counting as missing.
    Views are summed in ``(index, window, segment, crop)`` order in float64, so the result does not depend
    on how the views were spread over ranks.

    Returns:
        :class:`MergedViews`.

    Raises:
        ValueError: no records; an index, window, segment, crop or label out of range; views of one video
            with different labels; an int ``views_per_video`` that does not match the observed grid.
        MissingViewsError: views missing and not ``allow_missing`` (the message lists the first 10).
    """
    if records is None or len(records["index"]) == 0:
        raise ValueError("no view records to merge: the test loader produced nothing")
    n_all = len(np.asarray(records["index"]).reshape(-1))
    cols = {k: (np.asarray(records[k]).astype(np.int64).reshape(-1) if k in records else np.zeros(n_all, np.int64))
            for k in VIEW_COLUMNS}
    scores = np.asarray(records["scores"])
    substituted = np.asarray(records.get("substituted", np.zeros(n_all, bool))).astype(bool)
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
    s, c = _grid(cols, views_per_video)
    wins = np.ones(num_videos, np.int64) if windows is None else np.asarray(windows, np.int64).reshape(-1)
    if len(wins) != num_videos or (wins < 1).any():
        raise ValueError(f"windows must give >= 1 window for each of the {num_videos} rows, got {len(wins)} values")
    _check_ranges(cols, num_videos, s, c, scores.shape[1], wins)

    keys = np.stack([cols["index"], cols["window"], cols["segment"], cols["crop"]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)  # lexicographic order; first occurrence kept
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
    missing = _missing_views(views, num_videos, s, c, wins, unreadable, len(vids), allow_missing)
    sums = np.add.reduceat(views["scores"].astype(np.float64), starts, axis=0)
    return MergedViews(index=vids.astype(np.int64), scores=sums / counts[:, None], labels=group_labels,
                       num_views=counts.astype(np.int64), views=views, num_segments=s, num_crops=c,
                       duplicates=int(n - len(first)), missing=missing, num_listed=int(num_videos),
                       unreadable=[int(v) for v in unreadable])


def _check_ranges(cols: Mapping[str, np.ndarray], num_videos: int, s: int, c: int, num_classes: int,
                  wins: np.ndarray) -> None:
    """ValueError naming the first view whose index, window, segment, crop or label is out of range."""
    for key, hi in (("index", num_videos), ("segment", s), ("crop", c), ("label", num_classes)):
        bad = (cols[key] < 0) | (cols[key] >= hi)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} view(s) with {key} outside [0, {hi}), e.g. {int(cols[key][bad][0])}")
    bad = (cols["window"] < 0) | (cols["window"] >= wins[cols["index"]])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{int(bad.sum())} view(s) with a window outside their row's windows, e.g. row "
                         f"{int(cols['index'][i])} window {int(cols['window'][i])} of {int(wins[cols['index'][i]])}")


def _missing_views(views: Mapping[str, np.ndarray], num_videos: int, s: int, c: int, wins: np.ndarray,
                   unreadable: np.ndarray, num_scored: int, allow_missing: bool) -> list[tuple[int, ...]]:
    """The expected views (every window x segment x crop of every readable row) that never arrived:
    ``(index, segment, crop)`` tuples, or ``(index, window, segment, crop)`` when a row has several windows.

    Raises:
        MissingViewsError: some are missing and not ``allow_missing`` (else a warning).
    """
    w_max = int(wins.max())
    per_window = s * c
    present = np.zeros((num_videos, w_max * per_window), dtype=bool)
    present[views["index"], views["window"] * per_window + views["segment"] * c + views["crop"]] = True
    present[np.arange(w_max * per_window)[None, :] >= (wins * per_window)[:, None]] = True  # no such window
    present[unreadable] = True  # reported as unreadable, not as missing
    missing: list[tuple[int, ...]] = []
    for v, slot in np.argwhere(~present):
        w, rest = divmod(int(slot), per_window)
        key = (int(v), w, rest // c, rest % c)
        missing.append(key if w_max > 1 else (key[0], key[2], key[3]))
    if missing:
        total = int(wins.sum()) * per_window
        absent = num_videos - num_scored - len(unreadable)
        msg = (f"{len(missing)} of {total} views missing ({num_videos} videos, {int(wins.sum())} windows x {s} "
               f"segments x {c} crops; {absent} video(s) without any view), e.g. "
               f"{'(index, window, segment, crop)' if w_max > 1 else '(index, segment, crop)'} {missing[:10]}. "
               f"The test loader must cover the whole test set once (DistributedSampler with drop_last=False); "
               f"unreadable videos are reported separately, so this is a bug in the sampling.")
        if not allow_missing:
            raise MissingViewsError(msg, missing)
        log.warning("%s Scoring the views present.", msg)
    return missing


# ---------------------------------------------------------------------------------------------------
# one call for entry points
# ---------------------------------------------------------------------------------------------------
def multiview_test(model: nn.Module, loader: Any, device: torch.device | str, precision: str = "bf16",
                   num_videos: int | None = None, views_per_video: int | tuple[int, int] | None = None,
                   output_dir: str | None = None, class_names: Sequence[str] | None = None,
                   paths: Sequence[str] | None = None, logger: RunLogger | None = None, epoch: int | None = None,
                   allow_missing: bool = False, unreadable: str = "skip", score_fn=None,
                   scorer: "Scorer | None" = None) -> dict[str, Any]:
    """Collect, gather, merge, score and report a multi-view test (collective: call on every rank).

    The loader must cover the whole test set once (``DistributedSampler(shuffle=False, drop_last=False)``
    pads with repeats, which are dropped). ``num_videos`` / ``views_per_video`` / ``paths`` default to
    the loader's ``VideoClsDataset`` (``len(entries)``, ``(test_num_segment, test_num_crop)``, the
    list's relative paths); windows per row come from its ``windows_per_row`` when it has one
    (:class:`snappix.data.windowed.WindowedVideoDataset`). Rank 0 writes the report into ``output_dir``
    (when given) and, with a ``logger``, appends ``test_*`` numbers to ``log.txt`` at ``epoch``.

    An unreadable test video (the dataset substituted another row for it, logging it to
    ``bad_videos.txt``) is named in the summary and in ``unreadable_videos.csv``; ``unreadable="skip"``
    leaves it out of the accuracies, ``"wrong"`` counts it as a miss (:func:`summarize`).

    Args:
        score_fn: per-view ``logits -> scores`` (:func:`collect_view_scores`; default softmax).
        scorer: how merged views are scored and reported (default :class:`Scorer`: top-k accuracy,
            :func:`summarize` / :func:`write_report`); e.g. a regression plug passes its own.

    Returns:
        The scorer's summary dict (:func:`summarize`'s by default), identical on every rank.

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
    records = gather_views(collect_view_scores(model, loader, device, precision, logger, score_fn=score_fn))
    merged = merge_views(records, num_videos, views_per_video, allow_missing=allow_missing,
                         windows=getattr(dataset, "windows_per_row", None))
    scorer = scorer or Scorer()
    summary = scorer.summarize(merged, unreadable)
    if is_main_process():
        if output_dir:
            scorer.write_report(output_dir, merged, class_names, paths, summary, sources)
        else:
            log.info("\n%s", scorer.format_summary(summary, sources))
        if logger is not None and epoch is not None:
            logger.log_epoch(epoch, test={k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary


class Scorer:
    """How :func:`multiview_test` scores merged views: classification top-k by default. A method with
    other targets (e.g. regression) subclasses it and overrides the three methods, same signatures."""

    def summarize(self, merged: MergedViews, unreadable: str = "skip") -> dict[str, Any]:
        return summarize(merged, unreadable)

    def format_summary(self, summary: Mapping[str, Any], sources: Sequence[str] | None = None) -> str:
        return format_summary(summary, sources)

    def write_report(self, output_dir: str, merged: MergedViews, class_names, paths, summary, sources) -> dict:
        return write_report(output_dir, merged, class_names, paths, summary, sources)
