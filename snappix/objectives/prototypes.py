"""Prototypical contrast (PCL: Li et al., "Prototypical Contrastive Learning of Unsupervised Representations",
ICLR 2021, https://arxiv.org/abs/2005.04966) as used by Saccade-VSSL (Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698). See docs/methods/saccade.md, "Objectives".

* **Schedule.** From (1-based) epoch ``fs_warmup_epoch`` on, at every epoch divisible by ``cluster_freq``
  (and not the last one, when ``epochs`` is given), the projected, L2-normalised features of every instance are
  clustered: R3D ``--fs_warmup_epoch 241 --cluster_freq 5`` clusters at epochs 245, 250, ..., 295.
* **Clustering.** faiss k-means (CPU), once per entry of ``num_clusters`` (1500, 1500, 1500), seeds
  ``seed + i`` (1234, 1235, 1236), 20 iterations, 5 restarts (the best kept), 10..1000 points per centroid.
* **Concentration** of cluster c with members at squared distances ``d`` to its centroid:
  ``phi_c = mean(sqrt(d)) / log(n_c + 10)``; clusters with fewer than 2 members take the largest phi; phi is
  clipped to its [10, 90] percentile range and rescaled so that its mean is the temperature (0.07).
* **Loss.** For a query ``q`` (projected, normalised) of instance y and clustering i: the positive prototype is
  ``c+ = centroid[assign[y]]``; ``num_negatives`` (1024) prototypes are drawn without replacement from all
  clusters (one draw per step, shared by the batch); logits ``q . L2norm(c) / phi_c``; a drawn prototype equal
  to the query's own cluster is masked out. ``L_proto`` = the cross-entropy (target: the positive), averaged
  over the clusterings. (The reference puts the other queries' positives among the candidates too, which makes
  a query's own cluster appear as a "negative" whenever two queries share it; here it never does.)

The prototypes are buffers: saved in every checkpoint and restored on resume, so a resumed run uses exactly
the clustering it had. No trainable parameters.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snappix.objectives.gather import broadcast_

__all__ = ["kmeans", "concentration", "PrototypeLoss"]


def kmeans(x: np.ndarray, k: int, seed: int = 1234, niter: int = 20, nredo: int = 5, min_points: int = 10,
           max_points: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """faiss k-means (CPU) of ``x`` float ``(n, d)``.

    Returns:
        ``centroids`` float32 ``(k, d)``, ``assign`` int64 ``(n,)`` (nearest centroid) and ``sq_dist`` float32
        ``(n,)`` (squared L2 distance to it).

    Raises:
        ValueError: ``k`` outside ``[1, n]``.
        ImportError: faiss is not installed (``pip install faiss-cpu``; a core requirement).
    """
    import faiss  # imported here: importing snappix.objectives must not load faiss's OpenMP runtime

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n points, got k={k} for n={n}")
    km = faiss.Kmeans(d, int(k), niter=niter, nredo=nredo, seed=int(seed), verbose=False,
                      min_points_per_centroid=min_points, max_points_per_centroid=max_points)
    km.train(x)
    dist, idx = km.index.search(x, 1)
    return km.centroids.astype(np.float32).reshape(k, d), idx[:, 0].astype(np.int64), dist[:, 0].astype(np.float32)


def concentration(sq_dist: np.ndarray, assign: np.ndarray, k: int, temperature: float = 0.07) -> np.ndarray:
    """Per-cluster concentration phi (module docstring), float32 ``(k,)`` with mean ``temperature``."""
    counts = np.bincount(assign, minlength=k)
    sums = np.bincount(assign, weights=np.sqrt(np.maximum(sq_dist, 0.0)), minlength=k)
    phi = np.zeros(k, dtype=np.float64)
    many = counts > 1
    phi[many] = sums[many] / counts[many] / np.log(counts[many] + 10)
    phi[~many] = phi.max() if many.any() else 1.0
    phi = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    mean = phi.mean()
    phi = temperature * phi / mean if mean > 0 else np.full(k, temperature)
    return phi.astype(np.float32)


class PrototypeLoss(nn.Module):
    """PCL over ``len(num_clusters)`` clusterings; ``loss, metrics = pcl(outputs, batch)``. Buffers only.

    Args:
        n_instances: number of instances (``n_videos * focus_num``).
        dim: width of the projected features (512).
        num_clusters: k of each clustering (``--num_clusters 1500 1500 1500``); each must be ``<= n_instances``.
        fs_warmup_epoch, cluster_freq, epochs: the schedule (1-based epochs, module docstring); ``epochs=None``
            also clusters before the last epoch.
        temperature: the mean of phi (0.07).
        num_negatives: prototypes drawn per step (1024, the reference's ``nce_k``).
        seed: seed of the first clustering (1234).

    State: ``centroids_i`` ``(k_i, dim)``, ``density_i`` ``(k_i,)``, ``assign_i`` ``(n_instances,)`` long, and
    ``active`` (bool: a clustering exists). Until the first clustering the loss is 0 (no gradient).

    Call:
        outputs: ``proj`` ``(N, dim)`` projected, normalised queries. batch: ``instance`` (``N`` ids).

    Returns:
        scalar float32 loss and ``{"proto_loss", "proto_acc"}`` (top-1 accuracy of the prototype logits; both 0
        while inactive).

    Raises:
        ValueError: a k above ``n_instances`` or below 1, or features of the wrong shape in :meth:`update`.
    """

    def __init__(self, n_instances: int, dim: int = 512, num_clusters: Sequence[int] = (1500, 1500, 1500),
                 fs_warmup_epoch: int = 1, cluster_freq: int = 1, epochs: int | None = None,
                 temperature: float = 0.07, num_negatives: int = 1024, seed: int = 1234) -> None:
        super().__init__()
        ks = [int(k) for k in num_clusters]
        if not ks or min(ks) < 1 or max(ks) > n_instances or cluster_freq < 1:
            raise ValueError(f"num_clusters {ks} must be non-empty with 1 <= k <= n_instances={n_instances}, "
                             f"cluster_freq ({cluster_freq}) >= 1")
        self.n_instances, self.dim, self.num_clusters = n_instances, dim, ks
        self.fs_warmup_epoch, self.cluster_freq, self.epochs = fs_warmup_epoch, cluster_freq, epochs
        self.temperature, self.num_negatives, self.seed = temperature, num_negatives, seed
        for i, k in enumerate(ks):
            self.register_buffer(f"centroids_{i}", torch.zeros(k, dim))
            self.register_buffer(f"density_{i}", torch.full((k,), temperature))
            self.register_buffer(f"assign_{i}", torch.zeros(n_instances, dtype=torch.long))
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))

    def clustering(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(centroids, density, assign)`` of clustering ``i``."""
        return getattr(self, f"centroids_{i}"), getattr(self, f"density_{i}"), getattr(self, f"assign_{i}")

    def due(self, epoch: int) -> bool:
        """Whether prototypes are recomputed before 1-based ``epoch`` (the engine's 0-based epoch ``e`` is ``e + 1``)."""
        if self.epochs is not None and epoch >= self.epochs:
            return False
        return epoch >= self.fs_warmup_epoch and epoch % self.cluster_freq == 0

    @torch.no_grad()
    def update(self, features: torch.Tensor) -> None:
        """Cluster ``features`` ``(n_instances, dim)`` (row y = instance y; projected and normalised) and store the
        result; then rank 0's result is broadcast (every rank ends with the same prototypes).

        Raises:
            ValueError: a wrong shape.
        """
        if tuple(features.shape) != (self.n_instances, self.dim):
            raise ValueError(f"expected features ({self.n_instances}, {self.dim}), got {tuple(features.shape)}")
        x = features.detach().float().cpu().numpy()
        for i, k in enumerate(self.num_clusters):
            cent, assign, sq = kmeans(x, k, seed=self.seed + i)
            phi = concentration(sq, assign, k, self.temperature)
            c, d, a = self.clustering(i)
            c.copy_(torch.from_numpy(cent))
            d.copy_(torch.from_numpy(phi))
            a.copy_(torch.from_numpy(assign))
        self.active.fill_(True)
        broadcast_([t for i in range(len(self.num_clusters)) for t in self.clustering(i)] + [self.active])

    def on_epoch_start(self, epoch: int, features_fn: Callable[[], torch.Tensor]) -> bool:
        """Recluster before 0-based engine epoch ``epoch`` when :meth:`due` (``epoch + 1``) says so;
        ``features_fn()`` gives the ``(n_instances, dim)`` features and is called only then. Returns whether it ran."""
        if not self.due(epoch + 1):
            return False
        self.update(features_fn())
        return True

    def _logits(self, query: torch.Tensor, ids: torch.Tensor, i: int) -> torch.Tensor:
        cent, density, assign = self.clustering(i)
        k = cent.shape[0]
        pos = assign[ids]  # (N,)
        neg = torch.randperm(k, device=cent.device)[: self.num_negatives]  # shared by the batch
        protos = F.normalize(cent.float(), dim=1)
        q = query.float()
        pos_logit = (q * protos[pos]).sum(dim=1, keepdim=True) / density[pos, None]
        neg_logit = q @ protos[neg].t() / density[neg][None, :]
        neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))
        return torch.cat([pos_logit, neg_logit], dim=1)

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        query = outputs["proj"]
        if not bool(self.active):
            zero = query.new_zeros((), dtype=torch.float32)
            return zero, {"proto_loss": 0.0, "proto_acc": 0.0}
        ids = torch.as_tensor(batch["instance"]).reshape(-1).long().to(query.device)
        losses, accs = [], []
        for i in range(len(self.num_clusters)):
            logits = self._logits(query, ids, i)
            target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
            losses.append(F.cross_entropy(logits, target))
            accs.append((logits.argmax(dim=1) == 0).float().mean())
        loss = torch.stack(losses).mean()
        return loss, {"proto_loss": loss.item(), "proto_acc": torch.stack(accs).mean().item()}
