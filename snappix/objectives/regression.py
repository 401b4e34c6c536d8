"""Regression objective (VideoMamba's LVU like / view tasks, https://arxiv.org/abs/2403.06977; targets
as ViS4mer prepares them, https://arxiv.org/abs/2204.01692; ``docs/methods/videomamba.md``): mean squared
error on one output per video, and the metrics of a regression evaluation: MSE and Pearson's r.

Pearson's r is not a mean of per-batch values: :func:`regression_metrics` takes all predictions and
targets of an evaluation at once.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """MSE and Pearson's r over a whole evaluation set.

    Args:
        pred, target: float arrays ``(N,)`` (any shape is flattened), equal sizes.

    Returns:
        ``{"mse": mean((pred - target)^2), "r": Pearson correlation}`` as floats (computed in float64);
        ``r`` is ``nan`` for fewer than 2 values or a constant ``pred`` / ``target``; both ``nan`` for N = 0.

    Raises:
        ValueError: different sizes.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions for {t.size} targets")
    if p.size == 0:
        return {"mse": float("nan"), "r": float("nan")}
    mse = float(np.mean((p - t) ** 2))
    dp, dt = p - p.mean(), t - t.mean()
    denom = float(np.sqrt((dp * dp).sum() * (dt * dt).sum()))
    return {"mse": mse, "r": float((dp * dt).sum() / denom) if denom > 0 else float("nan")}


class RegressionLoss:
    """Mean squared error between a one-output model and ``batch["target"]``.

    Call:
        ``outputs``: ``(B, 1)`` or ``(B,)`` (or a mapping with ``"logits"``), any float dtype; the loss is
        computed in float32. ``batch["target"]``: float ``(B,)``.

    Returns:
        ``(loss, {"loss": float, "mse": float})``: the scalar float32 loss tensor and its value.

    Raises:
        KeyError: no ``target`` in the batch.
        ValueError: outputs with more than one value per video, or a target of another size.
    """

    def __repr__(self) -> str:
        return "RegressionLoss()"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        pred = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        if pred.dim() == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.dim() != 1:
            raise ValueError(f"RegressionLoss expects outputs (B, 1) or (B,), got {tuple(pred.shape)}: "
                             f"build the model with --nb_classes 1")
        if "target" not in batch:
            raise KeyError("RegressionLoss needs batch['target'] (float, one per video): a 'reg' list")
        target = torch.as_tensor(batch["target"], device=pred.device).float().reshape(-1)
        if target.shape != pred.shape:
            raise ValueError(f"target shape {tuple(target.shape)} != predictions {tuple(pred.shape)}")
        loss = torch.mean((pred.float() - target) ** 2)
        return loss, {"loss": loss.item(), "mse": loss.item()}
