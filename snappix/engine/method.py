"""The method plug: everything a training method hands the engine, in one object.

A method (coded MAE pretraining, finetuning a classifier, masked distillation, Saccade-VSSL, ...) is a
:class:`Method`; :func:`snappix.engine.runner.fit` trains it. The engine never asks which method runs:
it builds the loader from ``train_set``, calls the hooks below at fixed points, and saves the model and
the objective's state in one atomic checkpoint. Plugs are built in :mod:`snappix.methods` (one module
per method, picked by the entry point's ``--task``); ``docs/architecture.md`` shows where a new one goes.

Order of calls in each epoch ``e`` (0-based)::

    on_epoch_start(e, model, loader)                       # optional, every rank, e.g. k-means refresh
    for each batch:                                        # engine.loop.train_one_epoch
        batch = batch_transform(batch, model)             # optional, on the device, under no_grad
        outputs = model(batch["video"], **{k: batch[k] for k in model_inputs if k in batch})
        loss, metrics = objective(outputs, batch)          # under autocast; backward, optimiser step
    metrics = evaluate(model, e, logger)                   # optional, every eval_freq epochs and the last
    checkpoint: model, optimiser, scaler, objective.state_dict() (when an nn.Module), best value
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from snappix.errors import UserError

#: ``objective(outputs, batch) -> (scalar loss tensor, {name: float})``
Objective = Callable[[Any, Mapping[str, Any]], "tuple[torch.Tensor, dict[str, float]]"]
#: ``batch_transform(batch, model) -> batch``: runs on the device under ``torch.no_grad()``
BatchTransform = Callable[[dict, nn.Module], dict]
#: ``on_epoch_start(epoch, model, loader) -> None``
EpochHook = Callable[[int, nn.Module, Any], None]
#: ``evaluate(model, epoch, logger) -> {metric: float}`` (every rank; logged as ``val_*``)
EvalFn = Callable[[nn.Module, int, Any], dict]


class ObjectiveStateError(UserError, ValueError):
    """A checkpoint's objective state is missing or does not fit the method's objective."""


@dataclass
class Method:
    """A training method as the engine sees it.

    Attributes:
        model: the trained network (``nn.Module``); everything in it is trained and checkpointed.
            A frozen teacher is *not* part of it: it lives in ``batch_transform``.
        objective: ``objective(outputs, batch) -> (loss, metrics)``. When it is an ``nn.Module`` it is
            moved to the device and its ``state_dict()`` (buffers such as a memory bank, prototypes or a
            counter) is saved in every checkpoint under ``"objective"`` and restored on resume. It must
            not hold trainable parameters (put those in ``model``); :func:`check_objective` says so.
        train_set: the training dataset; items are dicts with ``video`` ``(C, T, H, W)`` float and
            whatever the objective and ``model_inputs`` need (masks, ``label``, ``index``, ...).
        collate_fn: the DataLoader's collate function (``None``: torch's default).
        model_inputs: batch keys passed to the model as keyword arguments when present
            (pretraining: ``encoder_mask`` / ``decoder_mask``; classifiers: none).
        batch_transform: optional ``(batch, model) -> batch`` applied to each training batch on the
            device under ``torch.no_grad()``, outside autocast (a transform that wants the run's
            precision enters :func:`snappix.engine.precision.autocast` itself). ``model`` is the
            unwrapped trained model. Mixup and a frozen teacher that turns a batch into targets and a
            mask live here.
        on_epoch_start: optional ``(epoch, model, loader)`` hook called on every rank before each
            training epoch (also the first epoch after a resume), e.g. to refresh k-means prototypes.
            ``model`` is the unwrapped trained model; ``loader`` the training loader.
        evaluate: optional ``(model, epoch, logger) -> metrics`` run on every rank every ``--eval_freq``
            epochs and after the last one. ``model`` is the training model as the engine holds it (DDP- or
            DeepSpeed-wrapped in a distributed run): call it, or ``snappix.engine.distributed.unwrap_model``
            it before reading attributes.
        best_metric: a key of ``evaluate``'s metrics (higher is better); ``checkpoint-best.pth`` is
            written when it improves.
        skip_weight_decay: parameter names (or globs) exempt from weight decay, besides 1-D tensors.
        name: a short label for logs (``"pretrain"``, ``"finetune"``, ...).
    """

    model: nn.Module
    objective: Objective
    train_set: Dataset
    collate_fn: Callable | None = None
    model_inputs: Sequence[str] = ("encoder_mask", "decoder_mask")
    batch_transform: BatchTransform | None = None
    on_epoch_start: EpochHook | None = None
    evaluate: EvalFn | None = None
    best_metric: str | None = None
    skip_weight_decay: set[str] | None = None
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def objective_state(self) -> dict | None:
        """The objective's ``state_dict()`` when it is an ``nn.Module``, else ``None``."""
        return self.objective.state_dict() if isinstance(self.objective, nn.Module) else None

    def load_objective_state(self, state: Mapping[str, Any] | None, source: str = "checkpoint") -> None:
        """Restore the objective's buffers from a checkpoint's ``"objective"`` entry.

        Raises:
            snappix.errors.UserError subclass (:class:`ObjectiveStateError`): the checkpoint has no
                objective state although the objective owns some, or the keys / shapes differ.
        """
        if not isinstance(self.objective, nn.Module):
            return
        own = self.objective.state_dict()
        if not own:
            return
        if state is None:
            raise ObjectiveStateError(f"{source} has no objective state, but the objective "
                                      f"{type(self.objective).__name__} keeps {sorted(own)}: it was written by "
                                      f"another method or an older snappix; start a new --output_dir")
        try:
            self.objective.load_state_dict(dict(state))
        except RuntimeError as e:
            raise ObjectiveStateError(f"{source}: the objective state does not fit "
                                      f"{type(self.objective).__name__}: {e}") from None


def check_objective(objective: Objective) -> None:
    """Refuse an objective with trainable parameters (the engine's optimiser only sees the model).

    Raises:
        ValueError: the objective is an ``nn.Module`` with parameters that require grad (named).
    """
    if isinstance(objective, nn.Module):
        names = [n for n, p in objective.named_parameters() if p.requires_grad]
        if names:
            raise ValueError(f"objective {type(objective).__name__} has trainable parameters {names[:5]}: put them "
                             f"in the model (the engine optimises model parameters only) or register them as "
                             f"buffers")
