"""Instance contrast against a memory bank, one instance per fixation (Saccade-VSSL, Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698; the memory bank of Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018, https://arxiv.org/abs/1805.01978).

* The bank holds one **raw** pooled feature per instance (``n_videos x focus_num`` slots; instance id
  ``video * focus_num + fixation``), initialised uniformly in ``[-s, s]``, ``s = 1 / sqrt(feat_dim / 3)``.
* A query ``f`` (the pooled feature of a clip) and ``K + 1`` bank rows (row 0 the query's own slot, the
  positive; rows 1..K drawn uniformly over all slots, the negatives; a draw may hit the positive slot, as in
  the reference) pass through the same projection ``g`` (``Linear`` + L2 normalisation, :class:`ProjectionHead`).
* ``loss = CE([g(m_y) . g(f), g(m_n1) . g(f), ...] / T, 0)`` with ``T = 0.07``, averaged over the queries.
* Then, without gradient, ``m_y <- momentum * m_y + (1 - momentum) * f`` (momentum 0.5; no renormalisation).

Clips A and B of one fixation share the slot ``y``, so they are positives through the bank; the other fixations
of the same video are negatives. See docs/methods/saccade.md, "Objectives".

**Where the trainable part lives.** The engine optimises model parameters only, so the projection is a
submodule of the trained model (:class:`snappix.objectives.saccade.SaccadeSSLModel` holds it and declares its
``lr * lr_ratio`` learning rate through ``lr_scales()``), and the bank rows are projected inside the model's
forward: :meth:`InstanceNCE.bank_rows` draws them in the plug's ``batch_transform`` (no gradient), the model
projects them, and :class:`InstanceNCE` (buffers only) turns the result into the loss and updates the bank.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from snappix.objectives.gather import all_gather_rows

__all__ = ["ProjectionHead", "InstanceNCE", "nce_logits"]


class ProjectionHead(nn.Module):
    """``g(f) = L2norm(W f + b)``: the shared projection of queries and bank rows (``Linear(in_dim, out_dim)``, bias
    initialised to zero). Input ``(..., in_dim)`` float -> ``(..., out_dim)`` unit vectors (same dtype)."""

    def __init__(self, in_dim: int = 512, out_dim: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x), dim=-1)


def nce_logits(query: torch.Tensor, rows: torch.Tensor, temperature: float) -> torch.Tensor:
    """``(N, K + 1)`` logits ``rows[i, j] . query[i] / T`` from ``query`` ``(N, D)`` and ``rows`` ``(N, K + 1, D)``
    (both projected and normalised), computed in float32."""
    return torch.einsum("nkd,nd->nk", rows.float(), query.float()) / temperature


class InstanceNCE(nn.Module):
    """The memory bank and the NCE loss; ``loss, metrics = nce(outputs, batch)``. Holds buffers only.

    Args:
        n_instances: bank slots (``n_videos * focus_num``; 9537 * 3 for UCF101 split 1).
        feat_dim: width of the raw pooled feature (512).
        nce_k: negatives per query (1024).
        temperature: T (0.07).
        momentum: bank update ``m <- momentum * m + (1 - momentum) * f`` (0.5).
        seed: seed of the bank's initialisation (the same on every rank, so that the banks agree).

    State (``state_dict``, saved in every checkpoint): ``memory`` float32 ``(n_instances, feat_dim)``.

    Call:
        outputs: ``feat`` ``(N, feat_dim)`` raw pooled features (for the update), ``proj`` ``(N, D)`` their
            projections, ``bank_proj`` ``(N, nce_k + 1, D)`` the projections of the rows :meth:`bank_rows` drew.
        batch: ``instance`` long, ``N`` ids in ``[0, n_instances)`` (any shape, flattened in the model's clip order).

    Returns:
        scalar float32 loss and ``{"nce_loss", "nce_pos_prob"}`` (the mean softmax probability of the positive).

    Raises:
        ValueError: ids out of range, or shapes that do not fit (``bank_proj`` not ``(N, nce_k + 1, D)``).
        KeyError: ``feat``, ``proj``, ``bank_proj`` or ``instance`` missing.

    Distributed: :meth:`update` gathers the features and ids of all ranks and applies them on every rank, so the
    banks stay identical; negatives are drawn per rank.
    """

    def __init__(self, n_instances: int, feat_dim: int = 512, nce_k: int = 1024, temperature: float = 0.07,
                 momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if n_instances < 1 or nce_k < 1 or not 0.0 <= momentum <= 1.0 or temperature <= 0:
            raise ValueError(f"need n_instances >= 1, nce_k >= 1, 0 <= momentum <= 1, temperature > 0; got "
                             f"{n_instances}, {nce_k}, {momentum}, {temperature}")
        self.n_instances, self.feat_dim, self.nce_k = n_instances, feat_dim, nce_k
        self.temperature, self.momentum = temperature, momentum
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        gen = torch.Generator().manual_seed(seed)
        memory = torch.rand(n_instances, feat_dim, generator=gen) * (2 * stdv) - stdv
        self.register_buffer("memory", memory)

    def _ids(self, instance: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(instance).reshape(-1).long().to(self.memory.device)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n_instances):
            raise ValueError(f"instance ids must be in [0, {self.n_instances}), got [{int(ids.min())}, "
                             f"{int(ids.max())}]")
        return ids

    def draw(self, instance: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bank indices ``(N, nce_k + 1)`` long: column 0 the ids, columns 1.. uniform over all slots (a CPU
        ``generator`` makes the draw reproducible; default the global RNG of the bank's device)."""
        ids = self._ids(instance)
        neg = torch.randint(self.n_instances, (ids.numel(), self.nce_k), generator=generator,
                            device="cpu" if generator is not None else self.memory.device)
        return torch.cat([ids[:, None], neg.to(ids.device)], dim=1)

    @torch.no_grad()
    def bank_rows(self, instance: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw bank rows ``(N, nce_k + 1, feat_dim)`` float32 at :meth:`draw`'s indices (a copy; row 0 the positive).
        Call it before the forward pass (the plug's ``batch_transform``) and give the result to the model."""
        return self.memory[self.draw(instance, generator)]

    @torch.no_grad()
    def update(self, feat: torch.Tensor, instance: torch.Tensor) -> None:
        """``memory[y] <- momentum * memory[y] + (1 - momentum) * mean(f : id(f) = y)`` over every rank's batch.

        ``feat`` ``(N, feat_dim)``; ``instance`` ``N`` ids. A slot that receives several features in one step
        (clips A and B of a fixation share it) moves towards their mean, once: deterministic and independent of
        the clip order. (The reference's ``index_copy_`` keeps one of the two updates, whichever is written last.)
        """
        ids = self._ids(instance)
        feat = feat.detach().float().reshape(ids.numel(), -1).to(self.memory.device)
        ids, feat = all_gather_rows(ids), all_gather_rows(feat)
        slots, inverse = torch.unique(ids, return_inverse=True)
        sums = feat.new_zeros(slots.numel(), self.feat_dim).index_add_(0, inverse, feat)
        mean = sums / torch.bincount(inverse, minlength=slots.numel()).to(feat.dtype)[:, None]
        self.memory[slots] = self.momentum * self.memory[slots] + (1 - self.momentum) * mean

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        query, rows, feat = outputs["proj"], outputs["bank_proj"], outputs["feat"]
        ids = self._ids(batch["instance"])
        n = query.shape[0]
        if rows.dim() != 3 or rows.shape[0] != n or rows.shape[1] != self.nce_k + 1 or ids.numel() != n:
            raise ValueError(f"expected bank_proj (N={n}, {self.nce_k + 1}, D) and {n} instance ids, got "
                             f"{tuple(rows.shape)} and {ids.numel()}")
        logits = nce_logits(query, rows, self.temperature)
        loss = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=logits.device))
        self.update(feat, ids)
        prob = logits.detach().softmax(dim=1)[:, 0].mean()
        return loss, {"nce_loss": loss.item(), "nce_pos_prob": prob.item()}
