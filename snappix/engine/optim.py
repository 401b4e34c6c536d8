"""Optimiser construction: parameter groups (weight-decay exemptions, layer-wise lr decay), AdamW,
and the batch-size learning-rate scaling rule.

Parameter groups carry two extra keys read by the training loop at every optimiser step:
``lr_scale`` (lr = schedule * lr_scale) and ``wd_scale`` (weight decay = schedule * wd_scale, 0 for
exempt groups), plus ``name`` and ``param_names`` for inspection.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Callable, Iterable

import torch
from torch import nn

from .distributed import unwrap_model

log = logging.getLogger(__name__)

#: parameter names (last dotted component) that never get weight decay: position tables and tokens
NO_DECAY_NAMES = frozenset({"pos_embed", "decoder_pos_embed", "pos_embedding", "absolute_pos_embed",
                            "relative_position_bias_table", "cls_token", "mask_token", "dist_token"})
#: components that put a parameter in layer 0 of layer-wise lr decay (VideoMAE semantics)
EMBED_NAMES = ("patch_embed", "pos_embed", "cls_token", "mask_token", "temporal_pos_embedding")


def scaled_lr(base_lr: float, batch_size: int, world_size: int = 1, acc_iters: int = 1, num_sample: int = 1,
              with_num_sample: bool = False) -> float:
    """Linear scaling rule: ``base_lr * batch_size * world_size * acc_iters [* num_sample] / 256``.

    SnapPix/VideoMAE pretraining scales by videos per optimiser step and ignores the repeated
    augmentation factor ``num_sample`` (defect §11.12: 8e-3 is applied to 8192 clips). snappix keeps
    that rule by default so the published recipes reproduce, and counts clips instead when
    ``with_num_sample`` (``--lr_scale_with_num_sample``).
    """
    total = batch_size * world_size * acc_iters * (num_sample if with_num_sample else 1)
    return base_lr * total / 256.0


def scaled_lrs(lr: float, min_lr: float, warmup_lr: float, batch_size: int, world_size: int = 1,
               acc_iters: int = 1, num_sample: int = 1, with_num_sample: bool = False,
               rule: str = "linear") -> dict[str, float]:
    """:func:`scaled_lr` applied to ``lr``, ``min_lr`` and ``warmup_lr`` (all three, as VideoMAE).

    ``rule="none"`` (``--lr_scale none``) returns the three values unscaled, for recipes that quote an
    absolute lr (Saccade-VSSL: 0.1 at batch 16).

    Returns ``{"lr": ..., "min_lr": ..., "warmup_lr": ..., "total_batch": ...}``; the parsed flags
    stay unscaled so the saved ``config.yaml`` can be fed back through ``--config``.

    Raises:
        ValueError: an unknown ``rule``.
    """
    kw = dict(batch_size=batch_size, world_size=world_size, acc_iters=acc_iters, num_sample=num_sample,
              with_num_sample=with_num_sample)
    total = batch_size * world_size * acc_iters * (num_sample if with_num_sample else 1)
    if rule == "none":
        return {"lr": float(lr), "min_lr": float(min_lr), "warmup_lr": float(warmup_lr), "total_batch": total}
    if rule != "linear":
        raise ValueError(f"unknown lr scaling rule {rule!r}: linear or none")
    return {"lr": scaled_lr(lr, **kw), "min_lr": scaled_lr(min_lr, **kw),
            "warmup_lr": scaled_lr(warmup_lr, **kw), "total_batch": total}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    """``name`` equals a pattern, lies under it (``pattern.``), ends with ``.pattern``, or fnmatches it."""
    for p in patterns:
        if name == p or name.startswith(p + ".") or name.endswith("." + p) or fnmatch.fnmatchcase(name, p):
            return True
    return False


def is_no_decay(name: str, param: torch.Tensor, skip: Iterable[str] = ()) -> bool:
    """True for parameters exempt from weight decay: 1-D tensors (norms, biases, scales), ``*.bias``,
    position tables and tokens (:data:`NO_DECAY_NAMES`), and names matching ``skip`` (from
    ``model.no_weight_decay()``; exact name, prefix, suffix or glob such as ``coded_layer.*``)."""
    return (param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES
            or _matches(name, skip))


def vit_layer_id(name: str, num_layers: int) -> int:
    """Layer index for layer-wise lr decay (VideoMAE ``get_num_layer_for_vit`` semantics).

    ``blocks.k.*`` -> ``k + 1``; ``patch_embed*``, ``pos_embed``, ``cls_token``, ``mask_token``,
    ``temporal_pos_embedding`` (VideoMamba) -> 0;
    everything else (final norm, head, fc_norm, sensor) -> ``num_layers + 1``. Wrapper prefixes
    (``module.``, ``encoder.``, ``backbone.``) are ignored: the first ``blocks.<int>`` component counts.
    """
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "blocks" and parts[i + 1].isdigit():
            return int(parts[i + 1]) + 1
    if any(p in EMBED_NAMES or p.startswith("patch_embed") for p in parts):
        return 0
    return num_layers + 1


def _num_layers(model: nn.Module) -> int:
    if hasattr(model, "get_num_layers"):
        return int(model.get_num_layers())
    for attr in ("blocks", "encoder.blocks", "backbone.blocks"):
        obj = model
        try:
            for a in attr.split("."):
                obj = getattr(obj, a)
            return len(obj)
        except AttributeError:
            continue
    raise ValueError("layer decay needs the number of layers: the model has no `blocks` or `get_num_layers()`; "
                     "pass num_layers")


def model_no_weight_decay(model: nn.Module) -> set[str]:
    """Names the model exempts from weight decay via ``no_weight_decay()`` (timm convention), or ``set()``."""
    model = unwrap_model(model)
    fn = getattr(model, "no_weight_decay", None)
    return set(fn()) if callable(fn) else set()


def param_groups(model: nn.Module, weight_decay: float, skip: Iterable[str] | None = None,
                 layer_decay: float | None = None, num_layers: int | None = None,
                 layer_id_fn: Callable[[str, int], int] | None = None) -> list[dict]:
    """Split trainable parameters into optimiser groups.

    Args:
        model: the (possibly DDP-wrapped) model; frozen parameters are left out.
        weight_decay: decay of the ``decay`` groups (``no_decay`` groups get 0).
        skip: extra no-decay names; default ``model.no_weight_decay()``.
        layer_decay: ``ld`` in (0, 1] enables layer-wise lr decay: group ``layer_{id}_{decay|no_decay}``
            gets ``lr_scale = ld ** (num_layers + 1 - id)`` (VideoMAE/BEiT). ``None`` or 1.0: two groups
            ``decay`` / ``no_decay`` with ``lr_scale`` 1.
        num_layers: transformer depth ``L``; default ``model.get_num_layers()`` or ``len(model.blocks)``.
        layer_id_fn: ``(name, L) -> id`` in ``0..L+1``; default :func:`vit_layer_id`.

    A model may also declare per-parameter lr multipliers with ``lr_scales() -> {name: scale}``
    (e.g. the TPAMI'23 exposure pattern trains at ``1/sigma`` times the lr); those parameters get
    their own group with ``lr_scale`` multiplied by it.

    Returns:
        list of dicts with ``params``, ``param_names``, ``name``, ``weight_decay``, ``wd_scale``
        (1.0 / 0.0) and ``lr_scale``; empty groups are dropped.
    """
    module = unwrap_model(model)
    skip = model_no_weight_decay(module) if skip is None else set(skip)
    use_ld = layer_decay is not None and layer_decay != 1.0
    if use_ld:
        if not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
        num_layers = _num_layers(module) if num_layers is None else num_layers
        layer_id_fn = layer_id_fn or vit_layer_id
    extra_scales = module.lr_scales() if callable(getattr(module, "lr_scales", None)) else {}
    groups: dict[str, dict] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = is_no_decay(name, p, skip)
        kind = "no_decay" if no_decay else "decay"
        if use_ld:
            layer = layer_id_fn(name, num_layers)
            gname, lr_scale = f"layer_{layer}_{kind}", float(layer_decay ** (num_layers + 1 - layer))
        else:
            gname, lr_scale = kind, 1.0
        if name in extra_scales:
            gname, lr_scale = f"{gname}_lr_x{extra_scales[name]:.6g}", lr_scale * float(extra_scales[name])
        g = groups.setdefault(gname, {"name": gname, "params": [], "param_names": [],
                                      "weight_decay": 0.0 if no_decay else weight_decay,
                                      "wd_scale": 0.0 if no_decay else 1.0, "lr_scale": lr_scale})
        g["params"].append(p)
        g["param_names"].append(name)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return list(groups.values())


def use_fused_adamw(groups: Iterable[dict]) -> bool:
    """Use PyTorch's fused AdamW kernel: on the CPU, for floating-point parameters.

    On a CPU the default multi-tensor (``foreach``) AdamW runs several small ops per parameter tensor and
    state; the fused kernel does the whole update in one pass: 21 ms instead of 79 ms per step for the
    coded MAE ViT-S's 23.5 M parameters on 2 idle cores (``benchmarks/bench_train.py``), and far more
    when other processes compete for the cores. The update is the same (tests compare the two). On
    GPUs the default is kept.
    """
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.device.type == "cpu" and p.is_floating_point() for p in params)


def create_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05, opt: str = "adamw",
                     opt_eps: float = 1e-8, opt_betas: Iterable[float] | None = (0.9, 0.999),
                     layer_decay: float | None = None, skip: Iterable[str] | None = None,
                     num_layers: int | None = None, momentum: float = 0.9) -> torch.optim.Optimizer:
    """Build the optimiser over :func:`param_groups`.

    Args:
        opt: ``adamw`` (:class:`torch.optim.AdamW`, the VideoMAE/SnapPix choice; fused kernel on the CPU,
            :func:`use_fused_adamw`) or ``sgd`` (momentum, for linear probing).
        lr: initial lr (the schedule overwrites it every step as ``schedule[step] * lr_scale``).
        opt_betas: AdamW betas (SnapPix pretraining: ``0.9 0.95``); ``None`` = torch default.

    Raises:
        ValueError: unknown ``opt``.
    """
    groups = param_groups(model, weight_decay, skip=skip, layer_decay=layer_decay, num_layers=num_layers)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    opt = opt.lower()
    if opt == "adamw":
        betas = tuple(opt_betas) if opt_betas is not None else (0.9, 0.999)
        if len(betas) != 2:
            raise ValueError(f"--opt_betas takes two values, got {list(betas)}")
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=opt_eps, weight_decay=weight_decay,
                                      fused=True if use_fused_adamw(groups) else None)
    elif opt == "sgd":
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {opt!r}: choose adamw or sgd")
    n_params = sum(p.numel() for g in groups for p in g["params"])
    log.info("optimizer %s: %d groups, %.2fM trainable parameters, groups %s", opt, len(groups), n_params / 1e6,
             [(g["name"], len(g["params"]), round(g["lr_scale"], 4), g["weight_decay"]) for g in groups])
    return optimizer


def set_lr_wd(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float | None = None) -> None:
    """Set every group's lr to ``lr * lr_scale`` and weight decay to ``weight_decay * wd_scale``.

    Groups without ``lr_scale`` use 1; groups without ``wd_scale`` keep their decay when it is 0
    and follow the schedule otherwise.
    """
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
        if weight_decay is not None:
            wd_scale = g.get("wd_scale", 1.0 if g.get("weight_decay", 0.0) > 0 else 0.0)
            g["weight_decay"] = weight_decay * wd_scale

