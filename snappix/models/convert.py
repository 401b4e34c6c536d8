"""Load pretrained weights into a classifier: our pretraining checkpoints, VideoMAE / VideoMAEv2 and SnapPix.

One converter for every source (SnapPix DAC'25 §5.1 "loading the pretrained checkpoint"; VideoMAE's
``run_class_finetuning.py`` loading rules), applied in this order:

1. **Sub-dict**: the first of ``model_keys`` (default ``model``, ``module``, ``state_dict``) that holds a
   mapping; otherwise the checkpoint itself is the state dict.
2. **Prefixes**: ``module.`` (DDP / DeepSpeed), ``encoder.`` (MAE pretraining models, ours and VideoMAE's)
   and ``backbone.`` are stripped, repeatedly (``module.encoder.x`` -> ``x``), unless the target model
   itself has parameters under that prefix.
3. **Model-specific names**: a model with ``remap_state_dict(state)`` renames its own foreign layouts
   (SnapPix C3D / C2DPt layer names -> :class:`~snappix.models.cnn3d.C3D` / :class:`~snappix.models.svc2d.SVC2D`;
   VideoMamba's released checkpoints, :mod:`~snappix.models.convert_videomamba`). A hook with a ``report``
   keyword also gets the report, to note what it resampled.
4. **Generic renames** (VideoMAE / SnapPix / timm -> ours, only where the names differ):

   =====================================================  ===========================================
   checkpoint                                             ours
   =====================================================  ===========================================
   ``coded_layer.coded_weight`` (SnapPix ``CodedLayer``),  ``sensor.logits`` (same binarisation rule and
   ``coded_layer.weight`` (TPAMI ``Exposuref``)            shape ``(1, 16, 8, 8)``: the pattern is kept)
   ``blocks.k.gamma_1`` / ``gamma_2`` (VideoMAE layer      ``blocks.k.ls1.gamma`` / ``ls2.gamma``
   scale)
   ``blocks.k.attn.qkv.bias`` (timm: one q,k,v bias)       ``blocks.k.attn.q_bias`` / ``v_bias`` (the key
                                                           bias is dropped: it shifts every logit of a
                                                           query row equally, which the softmax cancels)
   ``norm.*`` (encoder's final LayerNorm)                  dropped (mean pooling + a fresh ``fc_norm``,
                                                           SnapPix / VideoMAE), or ``fc_norm.*`` with
                                                           ``norm_to_fc_norm=True``
   =====================================================  ===========================================

   ``patch_embed.proj``, ``blocks.k.attn.q_bias`` / ``v_bias``, ``mlp.fc1`` / ``fc2``, ``fc_norm`` and
   ``head`` already have VideoMAE's names.
5. **Dropped** (reported in ``dropped``): the MAE decoder side (``decoder.*``, ``decoder_pos_embed``,
   ``mask_token``, ``encoder_to_decoder.*``), the pretraining-only heads of Saccade-VSSL (``projection.*``,
   ``pixpro.*`` of :class:`~snappix.objectives.saccade.SaccadeSSLModel`, whose ``backbone.*`` step 2 strips)
   unless the model has such keys, and a ``pos_embed`` when the model's table is the fixed
   sin-cos one (a non-persistent buffer rebuilt for the model's own grid, never loaded).
6. **Adapted**: a *learned* ``pos_embed`` of another token grid (other ``num_frames`` or frame size) is
   resampled with :func:`~snappix.models.pos_embed.interpolate_pos_embed`; a patch embedding of RGB
   weights loaded into a grey model is summed over the colour axis (grey replicated to 3 channels gives the
   same response), and grey weights into an RGB model are divided by 3 and repeated.
7. **Load** with :func:`snappix.methods.pretrained.load_pretrained` (via ``engine.checkpoint.load_state_dict_report``): missing, unexpected and
   shape-mismatched keys (e.g. a head with another class count: skipped, kept at init) are logged and
   returned.

Checkpoint files are read by :func:`snappix.methods.pretrained.load_pretrained` (``weights_only=True``).
VideoMAE, VideoMAEv2 and SnapPix checkpoints pickle an ``argparse.Namespace`` next to the weights, which
the safe loader refuses: pass ``trusted=True`` for files you trust (the error says so).
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from snappix.models.pos_embed import interpolate_pos_embed

__all__ = ["ConversionReport", "convert_state_dict", "DECODER_KEYS", "SENSOR_KEYS"]

log = logging.getLogger(__name__)

#: key prefixes of the MAE decoder side, never used by a classifier
DECODER_KEYS = ("decoder.", "decoder_pos_embed", "mask_token", "encoder_to_decoder.", "decoder_norm.",
                "decoder_embed.", "decoder_pred.")
#: foreign names of the exposure-pattern logits (SnapPix CodedLayer, TPAMI'23 Exposuref)
SENSOR_KEYS = ("coded_layer.coded_weight", "coded_layer.weight")
#: pretraining-only heads (Saccade-VSSL's projection and PixPro head), dropped unless the model has the key
PRETRAIN_HEAD_KEYS = ("projection.", "pixpro.")
DEFAULT_PREFIXES = ("module.", "encoder.", "backbone.")
DEFAULT_MODEL_KEYS = ("model", "module", "state_dict")


@dataclass
class ConversionReport:
    """What :func:`convert_state_dict` / :func:`snappix.methods.pretrained.load_pretrained` did.

    Attributes:
        missing: model keys not loaded (kept at their initialisation), including the shape-mismatched ones.
        unexpected: converted checkpoint keys the model has no place for (ignored).
        mismatched: ``(key, checkpoint shape, model shape)`` skipped for a shape difference.
        dropped: checkpoint keys removed on purpose (decoder side, unused final norm, fixed sin-cos tables).
        renamed: ``(checkpoint key, model key)`` pairs.
        adapted: human-readable notes on tensors that were transformed (interpolated tables, channel changes).
        source: the checkpoint path (or ``"<state dict>"``).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    source: str = "<state dict>"

    @property
    def ok(self) -> bool:
        """True when nothing was missing, unexpected or mismatched."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """Multi-line text for logs: counts and the key lists that matter."""
        lines = [f"pretrained weights from {self.source}:"]
        for name in ("missing", "unexpected", "mismatched"):
            items = getattr(self, name)
            lines.append(f"  {name} ({len(items)}): {items if items else '-'}")
        lines.append(f"  dropped ({len(self.dropped)}): {_abbrev(self.dropped)}")
        if self.renamed:
            lines.append(f"  renamed ({len(self.renamed)}): {_abbrev([f'{a} -> {b}' for a, b in self.renamed])}")
        for note in self.adapted:
            lines.append(f"  adapted: {note}")
        return "\n".join(lines)


def _abbrev(items: Sequence[str], limit: int = 8) -> str:
    if not items:
        return "-"
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit})" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------------- steps
def _select(state: Mapping[str, Any], model_keys: Sequence[str]) -> dict[str, Any]:
    for key in model_keys:
        if key in state and isinstance(state[key], Mapping):
            return dict(state[key])
    return dict(state)


def _strip(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _infer_old_grid(n: int, new_grid: tuple[int, int, int]) -> tuple[int, int, int]:
    t, h, w = new_grid
    if n % (h * w) == 0:  # other number of frames (or tubelet), same frame size
        return n // (h * w), h, w
    if n % t == 0:  # same temporal length, other (square) frame size
        side = math.isqrt(n // t)
        if side * side == n // t:
            return t, side, side
    raise ValueError(f"cannot infer the token grid of a {n}-position table for a model with grid {new_grid}: "
                     f"pass old_grid=(T', H', W')")


def _adapt_in_chans(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Patch-embedding weight ``(D, C_ckpt, ...)`` -> ``(D, C_model, ...)`` for RGB <-> grey, else None."""
    c_ckpt, c_model = weight.shape[1], target.shape[1]
    if weight.shape[0] != target.shape[0] or weight.shape[2:] != target.shape[2:]:
        return None
    if c_model == 1 and c_ckpt > 1:
        return weight.sum(dim=1, keepdim=True)
    if c_ckpt == 1 and c_model > 1:
        return (weight / c_model).repeat(1, c_model, *([1] * (weight.dim() - 2)))
    return None


def convert_state_dict(model: nn.Module, state: Mapping[str, Any], *, model_keys: Sequence[str] = DEFAULT_MODEL_KEYS,
                       prefixes: Sequence[str] = DEFAULT_PREFIXES, norm_to_fc_norm: bool = False,
                       old_grid: Sequence[int] | None = None, pos_interp_mode: str = "bicubic",
                       report: ConversionReport | None = None) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a checkpoint's weights to ``model``'s names and shapes (steps 1-6 of the module docstring).

    Args:
        model: the target classifier (DDP-wrapped is fine).
        state: a checkpoint dict or a state dict (tensors keyed by name).
        model_keys: sub-dict names tried in order.
        prefixes: prefixes to strip (those the model itself uses are kept).
        norm_to_fc_norm: load the encoder's final ``norm`` into ``fc_norm`` instead of dropping it.
        old_grid: token grid ``(T', H', W')`` of a learned ``pos_embed`` in the checkpoint when it differs
            from the model's and cannot be inferred (inference: same frame size and other frame count,
            else same frame count and a square frame grid).
        pos_interp_mode: ``"bicubic"`` or ``"trilinear"`` (see :func:`interpolate_pos_embed`).
        report: a report to fill (a new one by default).

    Returns:
        ``(converted state dict, report)``; the report's ``missing`` / ``unexpected`` / ``mismatched`` are
        filled by :func:`snappix.methods.pretrained.load_pretrained`, not here.

    Raises:
        ValueError: a learned position table whose grid cannot be inferred.
    """
    module = getattr(model, "module", model)  # DDP / DeepSpeed wrappers
    report = report or ConversionReport()
    own = module.state_dict()
    own_params = dict(module.named_parameters())
    prefixes = [p for p in prefixes if not any(k.startswith(p) for k in own)]
    out = _strip_prefixes(_select(state, model_keys), prefixes, report)
    out = _model_remap(module, out, report)
    converted = _rename(out, own, norm_to_fc_norm, report)
    _adapt_pos_embed(module, converted, own_params, old_grid, pos_interp_mode, report)
    _adapt_patch_embed(converted, own, report)
    _settle_annealing(out, converted, own, report)
    _check_pattern(module, converted, report)
    return converted, report


def _strip_prefixes(raw: Mapping[str, Any], prefixes: Sequence[str], report: ConversionReport) -> dict[str, Any]:
    """Step 2: tensors under their names without ``prefixes``; non-tensor entries go to ``report.dropped``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            report.dropped.append(key)
            continue
        new = _strip(key, prefixes)
        if new != key:
            out[new] = value  # plain prefix stripping is not listed as a rename
        else:
            out[key] = value
    return out


def _model_remap(module: nn.Module, out: dict[str, Any], report: ConversionReport) -> dict[str, Any]:
    """Step 3: the model's own ``remap_state_dict`` hook, if any; keys it renamed are listed in ``report``."""
    remap = getattr(module, "remap_state_dict", None)
    if callable(remap):
        before = set(out)
        takes_report = "report" in inspect.signature(remap).parameters  # VideoMamba notes its resampling
        out = dict(remap(out, report=report) if takes_report else remap(out))
        report.renamed.extend((k, "(model remap)") for k in sorted(before - set(out)))
    return out


def _rename(out: Mapping[str, Any], own: Mapping[str, torch.Tensor], norm_to_fc_norm: bool,
            report: ConversionReport) -> dict[str, torch.Tensor]:
    """Steps 4-5: generic renames to ``own``'s names and the decoder / unused-norm / fixed-table drops."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in out.items():
        if key.startswith(DECODER_KEYS) or (key.startswith(PRETRAIN_HEAD_KEYS) and key not in own):
            report.dropped.append(key)
            continue
        new = key
        if key in SENSOR_KEYS:
            new = "sensor.logits"
        elif ".gamma_1" in key or ".gamma_2" in key:
            new = key.replace(".gamma_1", ".ls1.gamma").replace(".gamma_2", ".ls2.gamma")
        elif key.endswith(".attn.qkv.bias") and key not in own and key.replace("qkv.bias", "q_bias") in own:
            q, _, v = value.chunk(3)
            base = key[: -len("qkv.bias")]
            converted[base + "q_bias"], converted[base + "v_bias"] = q, v
            report.renamed.append((key, f"{base}q_bias + {base}v_bias (key bias dropped)"))
            continue
        elif key.startswith("norm.") and key not in own:
            if norm_to_fc_norm and ("fc_norm." + key[5:]) in own and ("fc_norm." + key[5:]) not in out:
                new = "fc_norm." + key[5:]
            else:
                report.dropped.append(key)
                continue
        if key == "pos_embed" and "pos_embed" not in own:
            report.dropped.append(key)  # the model's table is fixed sin-cos: rebuilt for its grid
            continue
        if new != key:
            report.renamed.append((key, new))
        converted[new] = value
    return converted


def _adapt_pos_embed(module: nn.Module, converted: dict[str, torch.Tensor], own_params: Mapping[str, torch.Tensor],
                     old_grid: Sequence[int] | None, pos_interp_mode: str, report: ConversionReport) -> None:
    """Step 6: a learned position table of another token grid, resampled in place in ``converted``.

    Raises:
        ValueError: the checkpoint table's grid cannot be inferred and ``old_grid`` is not given.
    """
    pos = converted.get("pos_embed")
    if pos is not None and "pos_embed" in own_params and pos.shape != own_params["pos_embed"].shape:
        new_grid = tuple(int(v) for v in module.grid)
        n_old = pos.reshape(-1, pos.shape[-1]).shape[0]
        grid_old = tuple(int(v) for v in old_grid) if old_grid is not None else _infer_old_grid(n_old, new_grid)
        if pos.shape[-1] == own_params["pos_embed"].shape[-1]:
            table = interpolate_pos_embed(pos.reshape(1, n_old, -1), grid_old, new_grid, mode=pos_interp_mode)
            converted["pos_embed"] = table.reshape(own_params["pos_embed"].shape)
            report.adapted.append(f"pos_embed interpolated from grid {grid_old} to {new_grid} ({pos_interp_mode})")


def _adapt_patch_embed(converted: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                       report: ConversionReport) -> None:
    """Step 6: RGB <-> grey patch embedding / first conv, adapted in place in ``converted``."""
    for key in ("patch_embed.proj.weight",):
        if key in converted and key in own and converted[key].shape != own[key].shape:
            adapted = _adapt_in_chans(converted[key], own[key])
            if adapted is not None:
                report.adapted.append(f"{key}: {converted[key].shape[1]} -> {own[key].shape[1]} input channels")
                converted[key] = adapted


def _settle_annealing(out: Mapping[str, Any], converted: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                      report: ConversionReport) -> None:
    """A trained TPAMI pattern from a foreign checkpoint (which does not save the annealing counter) must not
    be re-annealed with noise: its counter is set to "done" in ``converted``."""
    if (any(k in out for k in SENSOR_KEYS) and "sensor.anneal_left" in own and "sensor.anneal_left" not in converted):
        converted["sensor.anneal_left"] = torch.zeros_like(own["sensor.anneal_left"])
        report.adapted.append("sensor.anneal_left set to 0: the loaded pattern is trained, no noise annealing")


def _check_pattern(module: nn.Module, converted: Mapping[str, torch.Tensor], report: ConversionReport) -> None:
    """Note when the checkpoint's exposure pattern differs from the one the model was built with."""
    sensor = getattr(module, "sensor", None)
    logits = converted.get("sensor.logits")
    if sensor is None or logits is None or not hasattr(sensor, "binarize") or not hasattr(sensor, "logits"):
        return
    if logits.shape != sensor.logits.shape:
        return
    with torch.no_grad():
        old = sensor.binarize(sensor.logits.detach().float().cpu())
        new = sensor.binarize(logits.detach().float().cpu())
    if not torch.equal(old, new):
        differ = int((old != new).sum())
        report.adapted.append(f"sensor.logits: the checkpoint's exposure pattern replaces the model's "
                              f"({differ} of {old.numel()} slots differ)")
