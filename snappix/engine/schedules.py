"""Per-optimiser-step schedules (learning rate, weight decay).

One value per optimiser *update* (not per micro-batch): with gradient accumulation the schedule
index advances once every ``acc_iters`` micro-batches (SnapPix §3.3).
"""

from __future__ import annotations

import math
from typing import Sequence

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
    warmup = _warmup_length(epochs, steps_per_epoch, warmup_epochs, warmup_steps)
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


def _warmup_length(epochs: int, steps_per_epoch: int, warmup_epochs: float, warmup_steps: int | None) -> int:
    total = int(epochs) * int(steps_per_epoch)
    if total <= 0:
        raise ValueError(f"empty schedule: epochs={epochs}, steps_per_epoch={steps_per_epoch}")
    warmup = int(warmup_steps) if warmup_steps is not None and warmup_steps > 0 else int(round(warmup_epochs * steps_per_epoch))
    if warmup >= total:
        raise ValueError(f"warmup ({warmup} steps) must be shorter than the schedule ({total} steps)")
    return warmup


def milestone_steps(steps_per_epoch: int, decay_epochs: Sequence[float] | None = None,
                    decay_steps: Sequence[int] | None = None) -> list[int]:
    """Multi-step milestones as optimiser-step indices: ``decay_steps`` as given, else each epoch of
    ``decay_epochs`` times ``steps_per_epoch`` (rounded; epoch 90 is the first step of the 91st epoch).

    Raises:
        ValueError: both or neither given, a negative milestone, or milestones not increasing.
    """
    if (decay_epochs is None) == (decay_steps is None):
        raise ValueError("a multistep schedule needs exactly one of --lr_decay_epochs and --lr_decay_steps")
    steps = ([int(s) for s in decay_steps] if decay_steps is not None
             else [int(round(float(e) * steps_per_epoch)) for e in decay_epochs])  # type: ignore[union-attr]
    if any(s < 0 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"lr decay milestones must be >= 0 and increasing, got {list(decay_steps or decay_epochs)}")
    return steps


def multistep_schedule(base_value: float, decay_rate: float, milestones: Sequence[int], epochs: int,
                       steps_per_epoch: int, warmup_epochs: float = 0, warmup_steps: int = -1,
                       start_warmup_value: float = 0.0) -> np.ndarray:
    """Linear warmup then step decay, one value per optimiser step (torch's ``MultiStepLR``, per step).

    Warmup step ``i < W``: ``start + (base - start) * i / W``; every later step ``s``:
    ``base * decay_rate ** (number of milestones <= s)``. Milestones inside the warmup count from the
    end of the warmup on.

    Args:
        base_value: the lr after warmup (already scaled).
        decay_rate: factor per milestone (``--lr_decay_rate``, e.g. 0.1 or 0.2).
        milestones: optimiser-step indices (:func:`milestone_steps`); those past the run are ignored.

    Returns:
        float64 array of shape ``(epochs * steps_per_epoch,)``.

    Raises:
        ValueError: empty schedule, or warmup not shorter than the schedule.
    """
    warmup = _warmup_length(epochs, steps_per_epoch, warmup_epochs, warmup_steps)
    total = int(epochs) * int(steps_per_epoch)
    steps = np.arange(total)
    passed = (steps[:, None] >= np.asarray(list(milestones) or [total], dtype=np.int64)[None, :]).sum(1)
    out = float(base_value) * float(decay_rate) ** passed.astype(np.float64)
    out[:warmup] = start_warmup_value + (base_value - start_warmup_value) * np.arange(warmup) / max(warmup, 1)
    return out


def build_schedules(lr: float, min_lr: float, warmup_lr: float, weight_decay: float,
                    weight_decay_end: float | None, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float = 0, warmup_steps: int = -1, lr_sched: str = "cosine",
                    decay_rate: float = 0.1, decay_epochs: Sequence[float] | None = None,
                    decay_steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The learning-rate and weight-decay schedules of a run (values already scaled, see
    :func:`snappix.engine.optim.scaled_lrs`).

    ``lr_sched``: ``cosine`` (:func:`cosine_schedule` to ``min_lr``) or ``multistep``
    (:func:`multistep_schedule` at the milestones of ``decay_epochs`` / ``decay_steps``; ``min_lr`` unused).

    Returns:
        ``(lr_schedule, wd_schedule)``, each of shape ``(epochs * steps_per_epoch,)``. The weight
        decay is constant at ``weight_decay`` when ``weight_decay_end`` is ``None``, else a cosine
        from ``weight_decay`` to ``weight_decay_end`` without warmup.

    Raises:
        ValueError: an unknown ``lr_sched``, or bad milestones (:func:`milestone_steps`).
    """
    if lr_sched == "cosine":
        lr_schedule = cosine_schedule(lr, min_lr, epochs, steps_per_epoch, warmup_epochs=warmup_epochs,
                                      warmup_steps=warmup_steps, start_warmup_value=warmup_lr)
    elif lr_sched == "multistep":
        lr_schedule = multistep_schedule(lr, decay_rate, milestone_steps(steps_per_epoch, decay_epochs, decay_steps),
                                         epochs, steps_per_epoch, warmup_epochs, warmup_steps, warmup_lr)
    else:
        raise ValueError(f"unknown lr schedule {lr_sched!r}: cosine or multistep")
    wd_schedule = cosine_schedule(weight_decay, weight_decay_end, epochs, steps_per_epoch)
    return lr_schedule, wd_schedule
