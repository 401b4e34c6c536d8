"""Saccade-VSSL's pretraining objective put together (Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698): ``L = L_nce + L_pred + L_proto`` (the last after its warm-up).

* :class:`SaccadeSSLModel` is what the engine trains: a backbone (``saccade_r3d`` / ``saccade_r21d``) plus the
  trainable parts of the objectives (the shared projection of :mod:`~snappix.objectives.instance_nce` and the
  PixPro head of :mod:`~snappix.objectives.pixpro`); its ``lr_scales()`` puts the projection at
  ``lr * lr_ratio``.
* :class:`SaccadeLoss` is the method's objective (buffers only: memory bank and prototypes, both checkpointed);
  it also provides the plug's ``batch_transform`` (draws the bank rows) and ``on_epoch_start`` (k-means).

Wiring in a method plug (:class:`snappix.engine.method.Method`)::

    model = SaccadeSSLModel(timm.create_model("saccade_r3d", focus_level=0), lr_ratio=args.lr_ratio, pro_p=args.pro_p)
    loss = SaccadeLoss(n_instances=n_videos * focus_num, num_clusters=args.num_clusters, ...)
    Method(model=model, objective=loss, train_set=..., model_inputs=("focus", "nce_bank"),
           batch_transform=loss.batch_transform, on_epoch_start=loss.on_epoch_start)

Batch keys: ``video`` ``(B, 2n, C, T, H, W)`` or ``(B * 2n, C, T, H, W)`` float (per video the clips
``[A_0..A_{n-1}, B_0..B_{n-1}]``), ``focus`` ``(B, 2n, 1, H, W)`` / ``(B * 2n, 1, H, W)`` (or with a time axis),
``instance`` long ``(B, 2n)`` / ``(B * 2n,)`` (``video_index * n + fixation``).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from snappix.objectives.gather import all_gather_rows
from snappix.objectives.instance_nce import InstanceNCE, ProjectionHead
from snappix.objectives.pixpro import PixProHead, PixProLoss
from snappix.objectives.prototypes import PrototypeLoss

__all__ = ["SaccadeSSLModel", "SaccadeLoss", "instance_features"]


def _flat(x: torch.Tensor | None, grouped: bool) -> torch.Tensor | None:
    return x.flatten(0, 1) if x is not None and grouped else x


class SaccadeSSLModel(nn.Module):
    """Backbone + projection + PixPro head.

    Args:
        backbone: a :class:`snappix.models.saccade_backbones.SaccadeBackbone` (``num_classes=0``), or any module with
            ``forward_maps(video, focus) -> (pooled (N, F), conv5 (N, F, T', H', W'))`` and ``num_features``.
        proj_dim: projection width (512).
        lr_ratio: learning-rate multiplier of the projection (``--lr_ratio``, 0.001), via :meth:`lr_scales`.
        pro_p, pro_clamp_value, clips_per_video: see :class:`PixProHead`; ``pixpro=False`` drops the head.

    ``forward(video, focus=None, nce_bank=None)`` returns a dict: ``feat`` ``(N, F)`` raw pooled features,
    ``proj`` ``(N, proj_dim)`` their projections, ``bank_proj`` ``(N, K + 1, proj_dim)`` when ``nce_bank``
    ``(N, K + 1, F)`` is given, and the four ``pix_*`` maps of :class:`PixProHead` (which need whole videos:
    ``N`` a multiple of ``clips_per_video``). Grouped input ``(B, V, ...)`` is flattened to ``(B * V, ...)``.
    """

    def __init__(self, backbone: nn.Module, proj_dim: int = 512, lr_ratio: float = 1e-3, pro_p: float = 1.0,
                 pro_clamp_value: float = 0.0, clips_per_video: int = 6, pixpro: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        dim = int(backbone.num_features)
        self.projection = ProjectionHead(dim, proj_dim)
        self.pixpro = PixProHead(dim, pro_p, pro_clamp_value, clips_per_video) if pixpro else None
        self.lr_ratio = float(lr_ratio)

    def lr_scales(self) -> dict[str, float]:
        """``{"projection.linear.weight": lr_ratio, "projection.linear.bias": lr_ratio}`` (read by the engine's
        optimiser: the projection trains at ``lr * lr_ratio``)."""
        return {f"projection.{n}": self.lr_ratio for n, _ in self.projection.named_parameters()}

    def forward(self, video: torch.Tensor, focus: torch.Tensor | None = None,
                nce_bank: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        grouped = video.dim() == 6
        feat, conv5 = self.backbone.forward_maps(_flat(video, grouped), _flat(focus, grouped))
        out = {"feat": feat, "proj": self.projection(feat)}
        if nce_bank is not None:
            out["bank_proj"] = self.projection(nce_bank.to(feat.dtype))
        if self.pixpro is not None:
            out.update(self.pixpro(conv5))
        return out

    @torch.no_grad()
    def embed(self, video: torch.Tensor, focus: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, normalised features ``(N, proj_dim)`` of ``(N, C, T, H, W)`` clips (retrieval, clustering)."""
        return self.projection(self.backbone.forward_features(video, focus))


@torch.no_grad()
def instance_features(model: SaccadeSSLModel, batches: Iterable[dict], n_instances: int,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Projected features of every instance for k-means (the spec's re-extraction pass): for each batch of
    ``video`` / optional ``focus`` / ``instance`` (one clip per id, e.g. the fixation-start clips with a centre
    crop), ``model.embed``; rows gathered over ranks. Instances no batch covered keep zero rows. The model is put
    in eval mode for the pass and back in its previous mode afterwards. Returns float32 ``(n_instances, D)``."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    rows, ids = [], []
    for batch in batches:
        video = batch["video"].to(device)
        grouped = video.dim() == 6
        focus = batch.get("focus")
        focus = _flat(focus.to(device), grouped) if focus is not None else None
        rows.append(model.embed(_flat(video, grouped), focus).float())
        ids.append(torch.as_tensor(batch["instance"]).reshape(-1).long().to(device))
    model.train(was_training)
    feats, idx = all_gather_rows(torch.cat(rows)), all_gather_rows(torch.cat(ids))
    out = feats.new_zeros(n_instances, feats.shape[1])
    out[idx] = feats
    return out


class SaccadeLoss(nn.Module):
    """``loss, metrics = SaccadeLoss(...)(outputs, batch)`` with ``outputs`` from :class:`SaccadeSSLModel`.

    Args:
        n_instances: ``n_videos * focus_num``.
        feat_dim: backbone width (512). nce_k, temperature, momentum: :class:`InstanceNCE`.
        num_clusters, fs_warmup_epoch, cluster_freq, epochs, seed: :class:`PrototypeLoss`; ``num_clusters=()``
            (or ``None``) disables the prototypes.
        pixpro: include ``L_pred`` (the model must have its PixPro head).

    State: ``nce.memory`` and ``pcl.*`` (checkpointed by the engine). Metrics: ``loss``, ``nce_loss``,
    ``nce_pos_prob``, ``pred_loss``, ``proto_loss``, ``proto_acc``.
    """

    def __init__(self, n_instances: int, feat_dim: int = 512, proj_dim: int = 512, nce_k: int = 1024,
                 temperature: float = 0.07, momentum: float = 0.5,
                 num_clusters: Sequence[int] | None = (1500, 1500, 1500), fs_warmup_epoch: int = 1,
                 cluster_freq: int = 1, epochs: int | None = None, pixpro: bool = True, seed: int = 1234) -> None:
        super().__init__()
        self.nce = InstanceNCE(n_instances, feat_dim, nce_k, temperature, momentum)
        self.pcl = (PrototypeLoss(n_instances, proj_dim, num_clusters, fs_warmup_epoch, cluster_freq, epochs,
                                  temperature, nce_k, seed) if num_clusters else None)
        self.pred = PixProLoss() if pixpro else None

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        loss, metrics = self.nce(outputs, batch)
        for part in (self.pred, self.pcl):
            if part is not None:
                extra, m = part(outputs, batch)
                loss = loss + extra
                metrics.update(m)
        metrics["loss"] = loss.item()
        return loss, metrics

    def batch_transform(self, batch: dict, model: nn.Module | None = None) -> dict:
        """The plug's ``batch_transform``: adds ``nce_bank`` (raw bank rows, :meth:`InstanceNCE.bank_rows`)."""
        batch["nce_bank"] = self.nce.bank_rows(batch["instance"])
        return batch

    def on_epoch_start(self, epoch: int, model: nn.Module, loader=None,
                       features_fn: Callable[[], torch.Tensor] | None = None) -> bool:
        """The plug's ``on_epoch_start`` (0-based ``epoch``): recluster when due. ``features_fn()`` gives the
        ``(n_instances, proj_dim)`` features (e.g. :func:`instance_features` over a centre-crop loader, as the
        reference); without it the memory bank is projected with ``model.projection`` (no data pass). Returns
        whether the prototypes were recomputed."""
        if self.pcl is None:
            return False

        def from_bank() -> torch.Tensor:
            with torch.no_grad():
                proj = model.projection
                memory = self.nce.memory.to(next(proj.parameters()).device)
                return torch.cat([proj(chunk) for chunk in memory.split(4096)]).float()

        return self.pcl.on_epoch_start(epoch, features_fn or from_bank)
