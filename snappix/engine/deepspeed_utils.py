"""Optional DeepSpeed backend (``--enable_deepspeed``); ``deepspeed`` is imported only here, lazily.

* :func:`build_deepspeed_config` writes the DS config from our flags (train batch, accumulation,
  clipping, ZeRO stage 0/1/2, precision). ``bf16`` works on CPU and GPU (through DeepSpeed's
  ``torch_autocast``, so the model keeps fp32 weights exactly as without DeepSpeed); ``fp16`` is
  refused on CPU (DeepSpeed: "Type fp16 is not supported on your device", ecosystem §5.2). Note that
  DeepSpeed *disables* an outer ``torch.autocast`` inside the engine's forward unless its config has
  a ``torch_autocast`` section, so the loop's autocast is replaced by DeepSpeed's (same dtype).
* :func:`initialize_deepspeed` wraps our model and our torch optimizer (with its parameter groups,
  ``lr_scale``/``wd_scale`` kept) via ``deepspeed.initialize``; the training loop keeps setting the
  per-group lr/wd each step, and :class:`DeepSpeedScaler` replaces :class:`~.precision.LossScaler`.
* Checkpoints: every save writes DeepSpeed's own (partitioned) checkpoint under ``output_dir/deepspeed/<tag>``
  **and** our plain ``checkpoint-*.pth`` (weights as fp32 tensors, epoch, step, RNG, config) pointing
  at that tag; the ``.pth`` is written after the DS tag is complete and "latest" alternates between
  two tags, so the ``.pth`` files stay atomic and auto-resume works exactly as without DeepSpeed.
  ``--resume`` also accepts a bare DeepSpeed checkpoint directory (epoch and step come from its
  client state; VideoMAE#22 restarted those at 0). ``checkpoint-best.pth`` holds weights only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from typing import Any

import torch
from torch import nn

from .checkpoint import (CheckpointError, ResumeInfo, atomic_copy, atomic_save, build_checkpoint, checkpoint_names,
                         checkpoint_path, find_resume_checkpoint, load_checkpoint, restore_rng)
from .distributed import (DistInfo, barrier, broadcast_object, get_world_size, is_dist_avail_and_initialized,
                          is_main_process)

log = logging.getLogger(__name__)

DS_SUBDIR = "deepspeed"
DS_CONFIG_FILE = "deepspeed_config.json"


def import_deepspeed():
    """``import deepspeed`` with an actionable error when it is missing."""
    try:
        import deepspeed  # noqa: PLC0415
    except ImportError as e:
        raise ImportError("--enable_deepspeed needs DeepSpeed: pip install deepspeed (DS_BUILD_OPS=0 is enough "
                          "for CPU and plain GPU training)") from e
    return deepspeed


def build_deepspeed_config(batch_size: int, acc_iters: int = 1, world_size: int | None = None,
                           clip_grad: float | None = None, zero_stage: int = 0, precision: str = "bf16",
                           device: torch.device | str = "cpu", steps_per_print: int = 1000,
                           initial_scale_power: int = 16, native_bf16: bool = False) -> dict:
    """DeepSpeed config dict for our flags.

    Args:
        batch_size: micro-batch per process (``--batch_size``; videos, times ``num_sample`` clips if
            the loader expands them).
        acc_iters: ``gradient_accumulation_steps``.
        world_size: processes (default: the current world size).
        clip_grad: ``gradient_clipping`` (None -> 0.0 = off).
        zero_stage: 0, 1 or 2.
        precision: ``bf16`` -> DeepSpeed's ``torch_autocast`` section (fp32 weights and optimiser,
            ``torch.autocast(bfloat16)`` around the forward: the numerics of the non-DeepSpeed path);
            ``fp16`` -> DeepSpeed's ``fp16`` section with dynamic loss scaling (GPU only, as VideoMAEv2);
            ``fp32`` -> neither.
        native_bf16: use DeepSpeed's ``bf16`` section instead (bf16 weights, fp32 master copy in the
            optimiser; less memory, but every op must accept bf16 weights: a float32 activation
            reaching a bf16 LayerNorm fails on CPU with "mixed dtype").

    Raises:
        ValueError: unsupported ZeRO stage or precision, or fp16 on a non-CUDA device.
    """
    if zero_stage not in (0, 1, 2):
        raise ValueError(f"--zero_stage must be 0, 1 or 2, got {zero_stage}")
    dev_type = torch.device(device).type
    if precision == "fp16" and dev_type != "cuda":
        raise ValueError("DeepSpeed fp16 is not supported on CPU ('Type fp16 is not supported on your device'); "
                         "use --precision bf16 (or fp32)")
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}")
    world = get_world_size() if world_size is None else world_size
    cfg: dict[str, Any] = {
        "train_batch_size": batch_size * acc_iters * world,
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": acc_iters,
        "gradient_clipping": float(clip_grad) if clip_grad else 0.0,
        "steps_per_print": steps_per_print,
        "zero_optimization": {"stage": zero_stage},
        "zero_allow_untested_optimizer": True,
        "wall_clock_breakdown": False,
    }
    if precision == "bf16" and native_bf16:
        cfg["bf16"] = {"enabled": True}
    elif precision == "bf16":
        cfg["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    elif precision == "fp16":
        cfg["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": initial_scale_power,
                       "loss_scale_window": 1000, "hysteresis": 2, "min_loss_scale": 1}
    return cfg


def write_deepspeed_config(config: dict, output_dir: str | None) -> str | None:
    """Write ``output_dir/deepspeed_config.json`` (rank 0) for the record; returns the path."""
    if not output_dir or not is_main_process():
        return None
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, DS_CONFIG_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_process_group(info: DistInfo) -> None:
    """DeepSpeed needs ``torch.distributed`` even for one process: create a world-1 group if none exists."""
    if is_dist_avail_and_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    os.environ.setdefault("RANK", str(info.rank))
    os.environ.setdefault("WORLD_SIZE", str(info.world_size))
    os.environ.setdefault("LOCAL_RANK", str(info.local_rank))
    backend = "nccl" if info.device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, init_method="env://", rank=info.rank,
                                         world_size=info.world_size)


def initialize_deepspeed(model: nn.Module, optimizer: torch.optim.Optimizer, config: dict, info: DistInfo):
    """``deepspeed.initialize(model=model, optimizer=optimizer, config=config)``.

    Args:
        model: the bare model (not DDP-wrapped), already on ``info.device``.
        optimizer: from :func:`~.optim.create_optimizer` (its groups keep ``lr_scale``/``wd_scale``).

    Returns:
        ``(engine, ds_optimizer)``: pass ``engine`` as the model and ``ds_optimizer`` as the optimiser
        to :func:`~.loop.train_one_epoch`, with ``scaler=DeepSpeedScaler(engine)``.
    """
    deepspeed = import_deepspeed()
    ensure_process_group(info)
    engine, ds_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config,
                                                      dist_init_required=False)
    return engine, ds_optimizer


class DeepSpeedScaler:
    """The :class:`~.precision.LossScaler` interface on top of a DeepSpeed engine.

    ``engine.backward`` (loss already divided by ``acc_iters`` by the loop, so no second division)
    then ``engine.step()`` every micro-batch; DeepSpeed steps the optimiser, clips
    (``gradient_clipping``) and zeroes gradients at the accumulation boundary itself.
    """

    def __init__(self, engine):
        self.engine = engine

    @property
    def loss_scale(self) -> float:
        opt = getattr(self.engine, "optimizer", None)
        scale = getattr(opt, "cur_scale", None) or getattr(opt, "loss_scale", None)
        try:
            return float(scale) if scale is not None else 1.0
        except (TypeError, ValueError):
            return 1.0

    def __call__(self, loss: torch.Tensor, optimizer: Any, parameters: Any, clip_grad: float | None = None,
                 update: bool = True) -> float | None:
        boundary = self.engine.is_gradient_accumulation_boundary()
        if boundary != update:
            raise RuntimeError(f"DeepSpeed gradient accumulation is out of step with the loop (boundary={boundary}, "
                               f"update={update}); gradient_accumulation_steps must equal --acc_iters")
        self.engine.backward(loss, scale_wrt_gas=False)
        self.engine.step()
        if not update:
            return None
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def accumulation_context(self, model: nn.Module, update: bool):
        return contextlib.nullcontext()  # DeepSpeed defers the reduction to the boundary itself

    def zero_grad(self, optimizer: Any) -> None:
        pass  # engine.step() zeroes at the boundary

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _fp32_state_dict(engine) -> dict:
    return {k: (v.detach().float().cpu() if torch.is_floating_point(v) else v.detach().cpu())
            for k, v in engine.module.state_dict().items()}


def _latest_tag(output_dir: str) -> str | None:
    path = os.path.join(output_dir, "checkpoint-latest.pth")
    if not os.path.exists(path):
        return None
    try:
        return load_checkpoint(path).get("deepspeed", {}).get("tag")
    except CheckpointError:
        return None


def save_deepspeed_checkpoint(engine, output_dir: str, epoch: int, global_step: int, config: Any = None,
                              num_epochs: int | None = None, save_ckpt_freq: int | None = None,
                              best: bool = False, extra: dict | None = None) -> list[str]:
    """DeepSpeed counterpart of :func:`~.checkpoint.save_checkpoint` (call on every rank).

    Writes the DS checkpoint (tag ``epoch-{epoch}`` at numbered epochs, else the ``latest-a``/``latest-b``
    slot not referenced by the current ``checkpoint-latest.pth``), then the ``.pth`` files naming it.
    """
    tags = checkpoint_names(epoch, num_epochs, save_ckpt_freq, best)
    ds_dir = os.path.join(output_dir, DS_SUBDIR)
    if str(epoch) in tags:
        tag = f"epoch-{epoch}"
    else:
        current = _latest_tag(output_dir) if is_main_process() else None
        current = broadcast_object(current)
        tag = "latest-b" if current == "latest-a" else "latest-a"
    client = {"epoch": int(epoch), "global_step": int(global_step)}
    engine.save_checkpoint(ds_dir, tag=tag, client_state=client, save_latest=True)
    resume_extra = {**(extra or {}), "deepspeed": {"dir": DS_SUBDIR, "tag": tag}}
    state = build_checkpoint(engine.module, None, None, epoch, global_step, config, resume_extra)
    state["model"] = _fp32_state_dict(engine)
    written: list[str] = []
    error: Exception | None = None
    if is_main_process():
        try:
            for name in tags:
                path = checkpoint_path(output_dir, name)
                if name == "best":  # the DS tag may be recycled later: best keeps weights only
                    atomic_save({**state, "deepspeed": None}, path)
                elif not written:
                    atomic_save(state, path)
                else:
                    atomic_copy(written[0], path)
                written.append(path)
            log.info("saved %s (DeepSpeed tag %s)", ", ".join(written), tag)
        except CheckpointError as e:
            error = e
    barrier()
    if error is not None:
        raise error
    return written


def resume_deepspeed(engine, output_dir: str | None = None, resume_path: str | None = None,
                     auto_resume: bool = True) -> ResumeInfo:
    """Restore a DeepSpeed run from our ``.pth`` (which names its DS tag) or from a DS directory.

    Raises:
        CheckpointError: ``resume_path`` unreadable, or the DS tag a ``.pth`` names is missing.
    """
    if resume_path and os.path.isdir(resume_path):
        load_path, client = engine.load_checkpoint(resume_path)
        if load_path is None:
            raise CheckpointError(f"DeepSpeed could not load a checkpoint from {resume_path}")
        epoch = int((client or {}).get("epoch", -1))
        return ResumeInfo(epoch + 1, int((client or {}).get("global_step", 0)), load_path, dict(client or {}))
    if resume_path:
        path, state = resume_path, load_checkpoint(resume_path)
        base = os.path.dirname(os.path.abspath(resume_path))
    elif auto_resume and output_dir:
        found = find_resume_checkpoint(output_dir)
        if found is None:
            return ResumeInfo()
        (path, state), base = found, output_dir
    else:
        return ResumeInfo()
    ds = state.get("deepspeed") or {}
    if not ds.get("tag"):
        raise CheckpointError(f"{path} holds no DeepSpeed state (a weights-only or non-DeepSpeed checkpoint); "
                              "resume it without --enable_deepspeed or load its weights instead")
    ds_dir = os.path.join(base, ds.get("dir", DS_SUBDIR))
    if not os.path.isdir(os.path.join(ds_dir, ds["tag"])):
        raise CheckpointError(f"{path} names DeepSpeed tag {ds['tag']!r} but {ds_dir}/{ds['tag']} is missing")
    load_path, _ = engine.load_checkpoint(ds_dir, tag=ds["tag"], load_lr_scheduler_states=False)
    if load_path is None:
        raise CheckpointError(f"DeepSpeed could not load {ds_dir}/{ds['tag']}")
    restore_rng(state)
    epoch = int(state.get("epoch", -1))
    log.info("resumed DeepSpeed run from %s (tag %s, epoch %d done)", path, ds["tag"], epoch)
    return ResumeInfo(epoch + 1, int(state.get("global_step", 0)), path, state)
