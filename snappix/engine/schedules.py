"""Per-optimiser-step schedules (learning rate, weight decay).

One value per optimiser *update* (not per micro-batch): with gradient accumulation the schedule
index advances once every ``acc_iters`` micro-batches (SnapPix §3.3).
"""

from __future__ import annotations

import math

import numpy as np


def cosine_schedule(base_value: float, final_value: float | None, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float = 0, warmup_steps: int = -1,
                    start_warmup_value: float = 0.0) -> np.ndarray:
    """Linear warmup then half-cosine decay, one value per optimiser step.

    With ``W`` warmup steps and ``N = epochs * steps_per_epoch - W`` decay steps:

    * warmup, step ``i < W``: ``start + (base - start) * i / W`` (step 0 is ``start_warmup_value``,
      the ``--warmup_lr``; SnapPix ignored it and always started at 0, defect §11.12);
    * decay, step ``W + j``: ``final + 0.5 * (base - final) * (1 + cos(pi * j / (N - 1)))``, so step
      ``W`` is exactly ``base`` and the last step exactly ``final`` (VideoMAE divides by ``N`` and
      stops one step short of ``final``).

    Args:
        base_value: peak value reached at the end of warmup.
        final_value: value at the last step; ``None`` = constant ``base_value`` (no warmup either),
            the VideoMAE convention for ``--weight_decay_end None``.
        epochs, steps_per_epoch: schedule length is their product (> 0).
        warmup_epochs: warmup length in epochs (may be fractional), used when ``warmup_steps <= 0``.
        warmup_steps: warmup length in steps; ``> 0`` overrides ``warmup_epochs``.
        start_warmup_value: value at step 0.

    Returns:
        float64 array of shape ``(epochs * steps_per_epoch,)``.

    Raises:
        ValueError: empty schedule, or warmup not shorter than the schedule.
    """
    total = int(epochs) * int(steps_per_epoch)
    if total <= 0:
        raise ValueError(f"empty schedule: epochs={epochs}, steps_per_epoch={steps_per_epoch}")
    if final_value is None:
        return np.full(total, float(base_value), dtype=np.float64)
    warmup = int(warmup_steps) if warmup_steps is not None and warmup_steps > 0 else int(round(warmup_epochs * steps_per_epoch))
    if warmup >= total:
        raise ValueError(f"warmup ({warmup} steps) must be shorter than the schedule ({total} steps)")
    ramp = start_warmup_value + (base_value - start_warmup_value) * np.arange(warmup, dtype=np.float64) / max(warmup, 1)
    n = total - warmup
    if n == 1:
        decay = np.array([final_value], dtype=np.float64)
    else:
        j = np.arange(n, dtype=np.float64)
        decay = final_value + 0.5 * (base_value - final_value) * (1.0 + np.cos(math.pi * j / (n - 1)))
    out = np.concatenate([ramp, decay])
    assert out.shape == (total,)
    return out


def build_schedules(lr: float, min_lr: float, warmup_lr: float, weight_decay: float,
                    weight_decay_end: float | None, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float = 0, warmup_steps: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The learning-rate and weight-decay schedules of a run (values already scaled, see
    :func:`snappix.engine.optim.scaled_lrs`).

    Returns:
        ``(lr_schedule, wd_schedule)``, each of shape ``(epochs * steps_per_epoch,)``. The weight
        decay is constant at ``weight_decay`` when ``weight_decay_end`` is ``None``, else a cosine
        from ``weight_decay`` to ``weight_decay_end`` without warmup.
    """
    lr_schedule = cosine_schedule(lr, min_lr, epochs, steps_per_epoch, warmup_epochs=warmup_epochs,
                                  warmup_steps=warmup_steps, start_warmup_value=warmup_lr)
    wd_schedule = cosine_schedule(weight_decay, weight_decay_end, epochs, steps_per_epoch)
    return lr_schedule, wd_schedule
