"""Mixed precision and the optimiser step: autocast, GradScaler, gradient accumulation, clipping.

``--precision``:

* ``auto`` (default): ``bf16`` where the device computes it natively (CUDA with bf16 support; CPUs with
  AMX or AVX-512 BF16), otherwise ``fp32``; the choice and its reason are logged once at start-up
  (:mod:`.native_bf16`). On a CPU without bf16 units, bf16 autocast is emulated and several times slower.
* ``bf16``: ``torch.autocast(device_type, dtype=torch.bfloat16)`` on CPU and GPU; no loss scaling
  needed. On a GPU without bf16 support it falls back to fp16 with a warning.
* ``fp16``: autocast float16 + :class:`torch.amp.GradScaler` (GPU only; refused on CPU).
* ``fp32``: no autocast.

A non-finite loss stops the run with :class:`NonFiniteLossError` *before* its backward pass, so
neither the weights nor any checkpoint are touched.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Iterable

import torch
from torch import nn

from .native_bf16 import native_bf16

log = logging.getLogger(__name__)
_ANNOUNCED: set[tuple[str, str]] = set()

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; the message gives epoch, step, lr and the last good checkpoint."""


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """Validate ``precision`` for ``device`` and return the one actually used (never ``auto``).

    ``auto`` becomes ``bf16`` or ``fp32`` by :func:`~snappix.engine.native_bf16.native_bf16`; the choice and
    why are logged (at INFO) the first time for each device.

    Raises:
        ValueError: unknown precision, or ``fp16`` on a non-CUDA device (torch's CPU fp16 kernels are
            slow and DeepSpeed refuses them; use ``bf16``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    dev_type = torch.device(device).type
    if precision == "auto":
        native, reason = native_bf16(device)
        precision = "bf16" if native else "fp32"
        key = (str(torch.device(device)), precision)
        if key not in _ANNOUNCED:
            _ANNOUNCED.add(key)
            log.info("--precision auto -> %s: %s", precision, reason)
        return precision
    if precision == "fp16" and dev_type != "cuda":
        raise ValueError(f"--precision fp16 needs a CUDA device (GradScaler); on {dev_type} use --precision bf16 "
                         "or fp32")
    if precision == "bf16" and dev_type == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU does not support bf16; falling back to --precision fp16 with GradScaler")
        return "fp16"
    return precision


def autocast(device: torch.device | str, precision: str = "auto"):
    """Context manager running the forward pass in ``precision`` (nullcontext for fp32; ``auto`` is
    resolved by :func:`resolve_precision`)."""
    if precision == "auto":
        precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def check_finite(loss: torch.Tensor | float, *, epoch: int, step: int, lr: float,
                 last_checkpoint: str | None = None, note: str = "") -> float:
    """Return ``float(loss)`` or raise :class:`NonFiniteLossError` naming step, lr and checkpoint
    (``note`` is appended to the message)."""
    value = float(loss.detach().float().item() if isinstance(loss, torch.Tensor) else loss)
    if not math.isfinite(value):
        where = last_checkpoint or "none saved yet"
        raise NonFiniteLossError(
            f"loss is {value} at epoch {epoch}, optimizer step {step} (lr {lr:.4g}); "
            f"stopping. Nothing was saved after this step; the last good checkpoint is {where}.{note} Lower --lr, "
            f"set --clip_grad, use --precision bf16/fp32, or allow a few skipped steps with --skip_nonfinite N.")
    return value


def grad_norm(parameters: Iterable[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """Total gradient norm over ``parameters`` (those without ``.grad`` ignored); 0 if none."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.nn.utils.get_total_norm(grads, norm_type)


class LossScaler:
    """Backward, unscale, clip, step: one call per micro-batch (VideoMAE's ``NativeScalerWithGradNormCount``).

    Args:
        precision: ``bf16`` / ``fp16`` / ``fp32``; the GradScaler is active only for ``fp16``.
        device: device of the model (selects the GradScaler's device type).

    ``scaler(loss, optimizer, parameters, clip_grad, update)`` runs ``backward`` on ``loss`` (already
    divided by ``acc_iters`` by the caller); when ``update`` it unscales, clips to ``clip_grad`` (if
    set), steps the optimiser (skipped by the GradScaler on inf/NaN gradients) and returns the
    pre-clipping gradient norm as a float; otherwise it returns ``None`` and gradients accumulate.
    The caller zeroes gradients after an update.
    """

    def __init__(self, precision: str = "bf16", device: torch.device | str = "cpu"):
        self.precision = precision
        self._scaler = torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")

    @property
    def enabled(self) -> bool:
        return self._scaler.is_enabled()

    @property
    def loss_scale(self) -> float:
        """Current fp16 loss scale (1.0 when no scaling)."""
        return float(self._scaler.get_scale()) if self.enabled else 1.0

    def __call__(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor],
                 clip_grad: float | None = None, update: bool = True) -> float | None:
        self._scaler.scale(loss).backward()
        if not update:
            return None
        self._scaler.unscale_(optimizer)
        params = [p for p in parameters if p.grad is not None]
        if clip_grad:
            norm = torch.nn.utils.clip_grad_norm_(params, clip_grad)
        else:
            norm = grad_norm(params)
        self._scaler.step(optimizer)
        self._scaler.update()
        return float(norm)

    def accumulation_context(self, model: nn.Module, update: bool):
        """See :func:`accumulation_context`."""
        return accumulation_context(model, update)

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the accumulated gradients after an update."""
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self._scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._scaler.load_state_dict(state)


def accumulation_context(model: nn.Module, update: bool):
    """``model.no_sync()`` on non-final micro-batches of a DDP model (skips the gradient all-reduce),
    else a null context."""
    if not update and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()
