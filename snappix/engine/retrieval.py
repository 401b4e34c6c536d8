"""Nearest-neighbour video retrieval: per-video features from multi-view clips, and recall@k.

The protocol of VCOP / CoCLR / Saccade-VSSL (Lai et al., IEEE TCSVT 2023, https://doi.org/10.1109/TCSVT.2023.3301698,
docs/methods/saccade.md "Evaluation"): every test video is a query, every training video a gallery item; a
query scores a hit at ``k`` when **any** of its ``k`` most similar gallery videos has its class
("recall@k", also called top-k retrieval accuracy). Similarity is the cosine of L2-normalised features.

Without the reference's defects: features are deterministic (the caller's loader has no random
augmentation; :func:`extract_video_features` runs the model in eval mode), no video is dropped by a
``drop_last`` loader (the multi-view machinery of :mod:`snappix.engine.multiview` checks that every view of
every listed video arrived), and an unreadable video is named instead of silently replaced.

Method-agnostic: the model is any ``video (B, C, T, H, W) -> features (B, D)`` module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .multiview import collect_view_scores, gather_views, merge_views

__all__ = ["DEFAULT_KS", "RetrievalResult", "VideoFeatures", "extract_video_features", "recall_at_k",
           "nearest_neighbours"]

#: the field's cut-offs (VCOP, CoCLR, Saccade-VSSL)
DEFAULT_KS = (1, 5, 10, 20, 50)


@dataclass
class VideoFeatures:
    """One feature per list row (see :func:`extract_video_features`).

    Attributes:
        index: int64 ``(V,)`` list rows that have a feature, ascending.
        features: float32 ``(V, D)``, unit L2 norm (rows of an all-zero mean stay zero).
        num_views: int64 ``(V,)`` clips averaged per video.
        num_listed: rows in the list.
        unreadable: list rows whose video failed to decode (no feature; named in the report).
    """

    index: np.ndarray
    features: np.ndarray
    num_views: np.ndarray
    num_listed: int
    unreadable: list[int] = field(default_factory=list)


class _WithoutLabels:
    """A loader whose batches lose ``label``: the multi-view merge checks labels against the score width,
    which for features is the feature dimension; retrieval takes the labels from the list instead."""

    def __init__(self, loader: Any):
        self.loader = loader
        self.dataset = getattr(loader, "dataset", None)
        self.timeout = getattr(loader, "timeout", 0)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            batch = dict(batch)
            batch.pop("label", None)
            yield batch


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


@torch.no_grad()
def extract_video_features(model: nn.Module, loader: Iterable, device: torch.device | str, precision: str = "fp32",
                           num_videos: int | None = None, views_per_video: tuple[int, int] | None = None,
                           logger: Any = None) -> VideoFeatures:
    """Features of every video of a multi-view test loader: each clip's feature L2-normalised, averaged over
    the video's clips (in float64, in ``(index, segment, crop)`` order, so the result does not depend on the
    batch size or the number of ranks), L2-normalised again. Collective: call on every rank.

    Args:
        model: ``video (B, C, T, H, W) float -> (B, D)`` features, possibly DDP-wrapped; run in eval mode.
        loader: a non-shuffling, non-dropping loader over ``VideoClsDataset(mode="test")`` (batches with
            ``video``, ``index``, ``segment``, ``crop``), sharded or whole.
        device, precision: where and in which autocast precision (``bf16`` / ``fp16`` / ``fp32``) to run.
        num_videos, views_per_video: default to the loader's dataset (rows; ``(test_num_segment, test_num_crop)``).
        logger: a :class:`~snappix.engine.logging.RunLogger` for the progress bar (optional).

    Returns:
        :class:`VideoFeatures` (the same on every rank).

    Raises:
        snappix.engine.multiview.MissingViewsError: a view of a readable video never arrived.
        ValueError: no readable video, or a dataset without ``entries`` and no ``num_videos`` / ``views_per_video``.
    """
    dataset = getattr(loader, "dataset", None)
    if num_videos is None or views_per_video is None:
        if not hasattr(dataset, "entries"):
            raise ValueError("pass num_videos and views_per_video: the loader's dataset is not a VideoClsDataset")
        num_videos = len(dataset.entries) if num_videos is None else num_videos
        if views_per_video is None:
            views_per_video = (dataset.test_num_segment, dataset.test_num_crop)
    records = collect_view_scores(model, _WithoutLabels(loader), device, precision, logger, score_fn=_unit_rows)
    merged = merge_views(gather_views(records), num_videos, views_per_video,
                         windows=getattr(dataset, "windows_per_row", None))
    feats = _unit_rows(torch.from_numpy(merged.scores)).numpy().astype(np.float32)
    return VideoFeatures(index=merged.index, features=feats, num_views=merged.num_views, num_listed=int(num_videos),
                         unreadable=list(merged.unreadable))


def nearest_neighbours(queries: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor, k: int,
                       search: str = "torch", chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` gallery rows of largest inner product for each query (cosine for unit rows).

    Args:
        queries: float ``(Q, D)``; gallery: float ``(G, D)`` (same ``D``).
        k: neighbours per query; capped at ``G``.
        search: ``"torch"``: exact float32 matmul in chunks of ``chunk`` queries, ties broken by the lower
            gallery row (deterministic); ``"faiss"``: ``faiss.IndexFlatIP`` (exact, faiss-cpu; ties in faiss's order).

    Returns:
        ``(indices int64 (Q, k), similarities float32 (Q, k))``, most similar first.

    Raises:
        ValueError: empty inputs, a dimension mismatch, ``k < 1`` or an unknown ``search``.
    """
    q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
    g = np.ascontiguousarray(np.asarray(gallery, dtype=np.float32))
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1] or len(q) == 0 or len(g) == 0:
        raise ValueError(f"queries (Q, D) and gallery (G, D) must be non-empty with the same D, got {q.shape} "
                         f"and {g.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), len(g))
    if search == "faiss":
        import faiss

        index = faiss.IndexFlatIP(g.shape[1])
        index.add(g)
        sims, idx = index.search(q, k)
        return idx.astype(np.int64), sims.astype(np.float32)
    if search != "torch":
        raise ValueError(f"search must be 'torch' or 'faiss', got {search!r}")
    gt = torch.from_numpy(g)
    out_idx, out_sim = [], []
    for start in range(0, len(q), chunk):
        sims = (torch.from_numpy(q[start:start + chunk]) @ gt.T).numpy()
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        out_idx.append(order.astype(np.int64))
        out_sim.append(np.take_along_axis(sims, order, axis=1))
    return np.concatenate(out_idx), np.concatenate(out_sim).astype(np.float32)


@dataclass
class RetrievalResult:
    """What :func:`recall_at_k` found.

    Attributes:
        recall: ``{k: percent of queries with a same-class video among their k nearest}`` (0-100).
        neighbours: int64 ``(Q, max k)`` gallery rows, most similar first.
        similarities: float32 ``(Q, max k)``.
        hits: bool ``(Q, len(ks))``, per query and cut-off.
        ks: the cut-offs, ascending.
    """

    recall: dict[int, float]
    neighbours: np.ndarray
    similarities: np.ndarray
    hits: np.ndarray
    ks: tuple[int, ...]


def recall_at_k(queries: np.ndarray | torch.Tensor, query_labels: Sequence[int], gallery: np.ndarray | torch.Tensor,
                gallery_labels: Sequence[int], ks: Sequence[int] = DEFAULT_KS, search: str = "torch") -> RetrievalResult:
    """Recall@k of class retrieval: a query is a hit at ``k`` when any of its ``k`` nearest gallery items
    (by inner product: pass unit rows for cosine) has the query's label. A ``k`` larger than the gallery
    counts the whole gallery.

    Args:
        queries: float ``(Q, D)``; query_labels: int ``(Q,)``.
        gallery: float ``(G, D)``; gallery_labels: int ``(G,)``.
        ks: cut-offs (default 1, 5, 10, 20, 50).
        search: see :func:`nearest_neighbours`.

    Returns:
        :class:`RetrievalResult` (recall in percent).

    Raises:
        ValueError: label counts that do not match the features, an empty ``ks`` or a ``k < 1``; see
            :func:`nearest_neighbours`.
    """
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    ql = np.asarray(query_labels, dtype=np.int64).reshape(-1)
    gl = np.asarray(gallery_labels, dtype=np.int64).reshape(-1)
    if len(ql) != len(queries) or len(gl) != len(gallery):
        raise ValueError(f"{len(ql)} query labels for {len(queries)} queries, {len(gl)} gallery labels for "
                         f"{len(gallery)} gallery items")
    idx, sims = nearest_neighbours(queries, gallery, ks[-1], search)
    same = gl[idx] == ql[:, None]  # (Q, min(max k, G))
    first = np.cumsum(same, axis=1) > 0
    hits = np.stack([first[:, min(k, first.shape[1]) - 1] for k in ks], axis=1)
    recall = {k: float(100.0 * hits[:, j].mean()) for j, k in enumerate(ks)}
    return RetrievalResult(recall=recall, neighbours=idx, similarities=sims, hits=hits, ks=ks)
