"""Loading state dicts with a report, and refusing the weights of another model.

* :func:`load_state_dict_report`: non-strict loading that logs missing, unexpected and shape-mismatched keys;
* :func:`require_match` / :func:`loaded_share`: a checkpoint of another model (``--resume`` / ``--eval``
  of a wrong ``--model``, ``--finetune`` of another architecture) stops the run before training with one
  :class:`ModelMismatchError` naming the file, the counts and the first differing keys, instead of a raw
  ``RuntimeError`` listing every size mismatch or a run that silently trains from scratch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from snappix.errors import UserError

from .distributed import unwrap_model

log = logging.getLogger(__name__)

__all__ = ["CheckpointError", "LoadReport", "ModelMismatchError", "describe_mismatch", "load_state_dict_report",
           "loaded_share", "require_match"]


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be written or read (the message says which file and why)."""


class ModelMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model (the message names the file, counts and keys)."""


@dataclass
class LoadReport:
    """Keys that did not load: ``missing`` (in the model, not in the state), ``unexpected`` (in the
    state, not in the model), ``mismatched`` (``(key, state shape, model shape)``, skipped)."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple, tuple]]
    num_model_keys: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def load_state_dict_report(model: nn.Module, state: Mapping[str, torch.Tensor], strip_prefixes=("module.",),
                           strict: bool = False) -> LoadReport:
    """Load ``state`` into ``model`` non-strictly and log missing, unexpected and shape-mismatched keys.

    Args:
        state: a state dict, or a checkpoint dict with a ``model`` / ``module`` / ``state_dict`` entry.
        strip_prefixes: prefixes removed from state keys (DDP's ``module.``).
        strict: raise ``RuntimeError`` when anything did not load (after logging it).
    """
    for key in ("model", "module", "state_dict"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    module = unwrap_model(model)
    cleaned = {}
    for k, v in state.items():
        for p in strip_prefixes:
            if k.startswith(p):
                k = k[len(p):]
        cleaned[k] = v
    own = module.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in cleaned.items()
                  if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape]
    for k, _, _ in mismatched:
        cleaned.pop(k)
    result = module.load_state_dict(cleaned, strict=False)
    report = LoadReport(list(result.missing_keys), list(result.unexpected_keys), mismatched, len(own))
    name = type(module).__name__
    if report.missing:
        log.warning("%s: %d missing keys (kept at init): %s", name, len(report.missing), report.missing)
    if report.unexpected:
        log.warning("%s: %d unexpected keys (ignored): %s", name, len(report.unexpected), report.unexpected)
    for k, s, m in report.mismatched:
        log.warning("%s: shape mismatch for %s: checkpoint %s vs model %s (skipped)", name, k, s, m)
    if report.ok:
        log.info("%s: all %d keys loaded", name, len(cleaned))
    elif strict:
        raise RuntimeError(f"{name}: state dict does not match (missing {report.missing}, unexpected "
                           f"{report.unexpected}, mismatched {report.mismatched})")
    return report


def _shape(v) -> tuple:
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor], limit: int = 3) -> tuple[int, int, str]:
    """``(matching keys, model keys, text)``: how many model keys the state fills with the right shape, and
    the first ``limit`` missing / unexpected / shape-mismatched keys as text."""
    own = unwrap_model(model).state_dict()
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    matching = sum(1 for k, v in own.items() if k in state and _shape(state[k]) == tuple(v.shape))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {_shape(state[k])} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and _shape(state[k]) != tuple(v.shape)]
    parts = [f"{len(items)} {name} (e.g. {', '.join(items[:limit])})"
             for name, items in (("shape mismatches", shapes), ("missing", missing), ("unexpected", unexpected))
             if items]
    return matching, len(own), "; ".join(parts)


def require_match(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, flag: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``state`` has every key of ``model`` with its shape and
    nothing else (the check of ``--resume`` and ``--eval``: a checkpoint of this very model).

    Args:
        source: the checkpoint file (named in the message); flag: the flag that gave it (``--resume``).
    """
    matching, total, text = describe_mismatch(model, state)
    if text:
        raise ModelMismatchError(
            f"{source} ({flag}) holds the weights of another model: {matching} of {total} weights of "
            f"{type(unwrap_model(model)).__name__} match; {text}. Pass the --model (and its flags) the "
            f"checkpoint was trained with, or another checkpoint")


def loaded_share(report: LoadReport, model: nn.Module, ignore: Sequence[str] = ("head.", "fc_norm.")) -> tuple[int, int]:
    """``(loaded, total)`` keys of ``model`` outside the ``ignore`` prefixes (the new classifier head)
    that the load described by ``report`` filled."""
    keys = [k for k in unwrap_model(model).state_dict() if not k.startswith(tuple(ignore))]
    missing = set(report.missing) | {k for k, _, _ in report.mismatched}
    return sum(1 for k in keys if k not in missing), len(keys)
