"""Linear probing: freeze a classifier except its head, BatchNorm statistics included.

Saccade-VSSL's linear probe (``downstream.py --finetune False``; Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698) sets ``requires_grad=False`` on the backbone but leaves the network in
train mode, so the BatchNorm running statistics of the "frozen" backbone keep moving with the probe's data
(docs/methods/saccade.md, "Evaluation"). :func:`freeze_for_linear_probe` freezes the weights *and* keeps every
module outside the head in eval mode whatever ``model.train()`` the training loop calls, so the backbone is
exactly the pretrained function; ``bn_train=True`` (``--probe_bn_train``) restores the reference's behaviour.
"""

from __future__ import annotations

import types

from torch import nn

__all__ = ["freeze_for_linear_probe", "head_module_names"]


def head_module_names(model: nn.Module) -> list[str]:
    """Names (in ``model.named_modules()``) of the modules that stay trainable in a linear probe: the module
    ``model.get_classifier()`` returns (timm convention), plus ``fc_norm`` and ``head_drop`` when the model has
    them (ViT classifiers normalise the pooled feature right before the head; the dropout before the head,
    ``--head_drop_rate``, keeps working in a probe).

    Raises:
        ValueError: the model has no ``get_classifier()`` and no ``head`` attribute.
    """
    head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ValueError(f"{type(model).__name__} has no get_classifier() or head: cannot tell its head for a "
                         f"linear probe")
    names = [n for n, m in model.named_modules() if m is head and n]
    for extra in ("fc_norm", "head_drop"):
        if isinstance(getattr(model, extra, None), nn.Module):
            names.append(extra)
    return names


def _inside(name: str, roots: list[str]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def freeze_for_linear_probe(model: nn.Module, bn_train: bool = False) -> list[str]:
    """Freeze every parameter outside the head (:func:`head_module_names`) and, unless ``bn_train``, keep the
    modules outside the head in eval mode (dropout off, BatchNorm using and keeping its running statistics)
    when ``model.train()`` is called. The parameter names and the state dict are unchanged, so checkpoints
    load into the plain model.

    Args:
        model: a classifier (not DDP-wrapped; wrap it afterwards).
        bn_train: the reference's behaviour: frozen weights, but BatchNorm layers follow ``model.train()``
            (batch statistics in the forward pass, running statistics updated).

    Returns:
        The trainable parameter names (the head's).

    Raises:
        ValueError: see :func:`head_module_names`; a head without parameters.
    """
    heads = head_module_names(model)
    trainable = []
    for name, p in model.named_parameters():
        keep = _inside(name, heads)
        p.requires_grad_(keep)
        if keep:
            trainable.append(name)
    if not trainable:
        raise ValueError(f"the head {heads} of {type(model).__name__} has no parameters to train")
    frozen = {n for n, m in model.named_modules() if n and not _inside(n, heads)
              and (not bn_train or not isinstance(m, nn.modules.batchnorm._BatchNorm))}
    plain_train = type(model).train

    def train(self: nn.Module, mode: bool = True) -> nn.Module:  # by name: a deep copy freezes its own modules
        plain_train(self, mode)
        for n, m in self.named_modules():
            if n in frozen:
                m.training = False
        return self

    model.train = types.MethodType(train, model)  # an instance attribute: the class is untouched
    model.train(model.training)
    return trainable
