"""Process-group setup and guarded collectives.

Rank discovery, in order:

1. ``torchrun`` / ``torch.distributed.launch`` environment: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
   (``--local_rank`` / ``--local-rank`` fills ``LOCAL_RANK`` when the launcher passed only the flag);
2. SLURM: ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; ``MASTER_ADDR`` defaults to the first
   host of ``SLURM_NODELIST`` and ``MASTER_PORT`` to 29500 when unset;
3. otherwise a single process, which needs (and gets) no process group.

Backend: ``nccl`` when the run uses CUDA, ``gloo`` otherwise. Every collective below is a no-op (or
the identity) without an initialised process group, so single-process runs never need
``torch.distributed`` (unlike VideoMAE's unconditional ``barrier()``; SnapPix defect §11.15).
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import re
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

DEFAULT_MASTER_PORT = "29500"


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank, 0..world_size-1.
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        distributed: True when a process group was initialised (world_size > 1).
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (single process).
        device: the ``torch.device`` this process computes on.
        source: where the ranks came from: ``"env"``, ``"slurm"`` or ``"single"``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    backend: str | None = None
    device: torch.device = torch.device("cpu")
    source: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ---------------------------------------------------------------------------------------------------
# rank discovery
# ---------------------------------------------------------------------------------------------------
def first_slurm_host(nodelist: str) -> str:
    """First host name of a SLURM node list, e.g. ``"gpu[03-05,09],cpu1"`` -> ``"gpu03"``.

    Handles bracket ranges (zero padding kept) without calling ``scontrol``.

    Raises:
        ValueError: empty node list.
    """
    nodelist = nodelist.strip()
    if not nodelist:
        raise ValueError("empty SLURM_NODELIST")
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):  # the first comma outside brackets ends the first entry
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            end = i
            break
    entry = nodelist[:end]
    match = re.fullmatch(r"([^\[]*)\[([^\],\-]+)[^\]]*\](.*)", entry)
    if match:
        prefix, first, suffix = match.groups()
        return prefix + first + suffix
    return entry


def discover_ranks(local_rank_arg: int = -1, environ: dict | None = None) -> tuple[int, int, int, str]:
    """Return ``(rank, world_size, local_rank, source)`` from the launcher environment.

    ``environ`` defaults to ``os.environ``; for SLURM the ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/
    ``WORLD_SIZE``/``LOCAL_RANK`` variables that ``init_method="env://"`` reads are filled in it.
    ``local_rank_arg`` is the ``--local_rank`` flag, used when ``LOCAL_RANK`` is not in the
    environment (``torch.distributed.launch`` without ``--use-env``).
    """
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", local_rank_arg if local_rank_arg >= 0 else rank))
        return rank, world, local, "env"
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local = int(env.get("SLURM_LOCALID", "0"))
        if "MASTER_ADDR" not in env:
            env["MASTER_ADDR"] = first_slurm_host(env.get("SLURM_NODELIST", env.get("SLURM_JOB_NODELIST", "127.0.0.1")))
        env.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
        env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"] = str(rank), str(world), str(local)
        return rank, world, local, "slurm"
    return 0, 1, max(local_rank_arg, 0), "single"


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``"cuda"`` gets the index.

    Raises:
        RuntimeError: ``cuda`` requested but not available.
    """
    name = (device or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device}: CUDA is not available here; use --device cpu (or auto)")
        return torch.device(name if ":" in name else f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}")
    return torch.device(name)


def init_distributed(device: str = "auto", local_rank: int = -1, dist_url: str = "env://",
                     backend: str | None = None, timeout_min: float = 30.0, configure_logging: bool = True) -> DistInfo:
    """Discover ranks, pick the device and (for more than one process) initialise the process group.

    Args:
        device: ``--device`` value (``auto``, ``cuda``, ``cuda:1``, ``cpu``).
        local_rank: the ``--local_rank`` flag (``-1``: take it from the environment).
        dist_url: ``init_method`` for :func:`torch.distributed.init_process_group`.
        backend: force a backend; default ``nccl`` on CUDA, ``gloo`` otherwise.
        timeout_min: collective timeout in minutes.
        configure_logging: call :func:`setup_logging` so that only rank 0 prints INFO messages.

    Returns:
        :class:`DistInfo`.
    """
    rank, world, local, source = discover_ranks(local_rank)
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if configure_logging:
        setup_logging(rank)
    if world <= 1:
        return DistInfo(rank=0, world_size=1, local_rank=local, distributed=False, device=dev, source=source)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not is_dist_avail_and_initialized():
        kwargs = dict(backend=backend, init_method=dist_url, world_size=world, rank=rank,
                      timeout=datetime.timedelta(minutes=timeout_min))
        if backend == "nccl":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    log.info("distributed: rank %d/%d (local %d, %s, backend %s, %s)", rank, world, local, source, backend, dev)
    barrier()
    return DistInfo(rank=rank, world_size=world, local_rank=local, distributed=True, backend=backend,
                    device=dev, source=source)


def cleanup() -> None:
    """Wait for every rank, then destroy the process group (safe to call always).

    The barrier matters: a gloo rank that tears its group down while another is still working
    (e.g. rank 0 writing a report) can abort with "terminate called without an active exception".
    """
    if is_dist_avail_and_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at emit time (survives stream swaps by pytest, tqdm, ...)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_logging(rank: int = 0, level: int = logging.INFO) -> None:
    """Configure the root logger: rank 0 logs at ``level``, other ranks only warnings and errors.

    Messages carry the rank (``[rank1] ...``) so a warning from any process can be traced. This
    replaces VideoMAE's monkey-patching of ``builtins.print``: use ``logging`` in library code.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_snappix", False)), None)
    if handler is None:
        handler = _StdoutHandler(sys.stdout)
        handler._snappix = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.filters.clear()
    handler.addFilter(_RankFilter(rank))
    handler.setFormatter(logging.Formatter("%(asctime)s [rank%(rank)s] %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root.setLevel(level if rank == 0 else logging.WARNING)


# ---------------------------------------------------------------------------------------------------
# guarded queries and collectives
# ---------------------------------------------------------------------------------------------------
def is_dist_avail_and_initialized() -> bool:
    """True when ``torch.distributed`` is available and a process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank (0 without a process group)."""
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process)."""
    return get_rank() == 0


def barrier() -> None:
    """``dist.barrier()`` when a process group exists, else nothing."""
    if is_dist_avail_and_initialized():
        dist.barrier()


def _collective_device() -> torch.device:
    if is_dist_avail_and_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(value: float | torch.Tensor) -> float | torch.Tensor:
    """Sum over ranks. Floats come back as floats, tensors as tensors (on their own device)."""
    if not is_dist_avail_and_initialized():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    t = torch.as_tensor(value, dtype=torch.float64).detach().clone().to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    if is_tensor:
        return t.to(device=value.device, dtype=value.dtype)
    return float(t.item()) if t.dim() == 0 else t.cpu()


def all_reduce_max(value: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over ranks of an integer tensor (a copy; ``value`` itself in one process)."""
    if not is_dist_avail_and_initialized():
        return value
    t = value.detach().to(device=_collective_device(), dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.to(device=value.device, dtype=value.dtype)


def all_reduce_mean(value: float | torch.Tensor) -> float | torch.Tensor:
    """Mean over ranks (identity in a single process)."""
    world = get_world_size()
    if world == 1:
        return value
    total = all_reduce_sum(value)
    return total / world


def all_gather_object(obj: Any) -> list:
    """Gather one picklable object from every rank; ``[obj]`` in a single process."""
    if not is_dist_avail_and_initialized():
        return [obj]
    out: list = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """The object of rank ``src`` on every rank (identity in a single process)."""
    if not is_dist_avail_and_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


# ---------------------------------------------------------------------------------------------------
# seeds and model wrapping
# ---------------------------------------------------------------------------------------------------
def seed_everything(seed: int, rank: int | None = None) -> int:
    """Seed python, numpy and torch (all devices) with ``seed + rank``; returns the seed used."""
    seed = int(seed) + (get_rank() if rank is None else rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DDP / DeepSpeed / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel) or (
                hasattr(model, "module") and type(model).__name__ in ("DeepSpeedEngine", "PipelineEngine")):
            model = model.module
        else:
            return model


def wrap_ddp(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> torch.nn.Module:
    """Wrap in :class:`~torch.nn.parallel.DistributedDataParallel` when distributed, else return as is."""
    if not info.distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                     find_unused_parameters=find_unused_parameters)
