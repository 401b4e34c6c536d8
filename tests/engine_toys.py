"""Shared toys of the engine tests: a ViT-shaped model, an MSE objective, an in-memory dataset, a
ready optimiser, and a toy entry point that trains through the real runner.

Imported by ``tests/test_engine_*.py`` and ``tests/test_method_plug.py`` as ``engine_toys`` (``tests/`` is
not a package; pytest's default ``prepend`` import mode puts it on ``sys.path``).

The toy entry point is an ordinary training script: it parses the engine's flags, calls
:func:`snappix.engine.runner.start_run` and :func:`snappix.engine.runner.fit` with a
:class:`~snappix.engine.method.Method` of the toys, and prints a JSON summary on rank 0::

    python tests/engine_toys.py --output_dir /tmp/x --device cpu --epochs 3 --warmup_epochs 1
    torchrun --nproc_per_node 2 tests/engine_toys.py --output_dir /tmp/x --device cpu --epochs 3 --warmup_epochs 1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[1]
SUMMARY = "SUMMARY "
#: flags of every toy launch: CPU, no workers, 32 clips in batches of 4 with 2 accumulation steps
#: (4 optimiser steps per epoch), 3 epochs
TOY_FLAGS = ("--device", "cpu", "--num_workers", "0", "--batch_size", "4", "--acc_iters", "2", "--epochs", "3",
             "--warmup_epochs", "1", "--lr", "1e-2", "--no_progress")


class TinyViT(nn.Module):
    """ViT-shaped toy: parameter names as in the real models (patch_embed, pos_embed, tokens, blocks)."""

    def __init__(self, dim: int = 8, depth: int = 2, in_features: int = 3 * 2 * 4 * 4):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Linear(in_features, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, 4, dim) * 0.02)
        self.sensor = nn.Module()
        self.sensor.logits = nn.Parameter(torch.randn(1, 2, 4, 4))  # 4-D, excluded by name only
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, in_features)

    def no_weight_decay(self):
        return {"sensor.logits"}

    def forward(self, video, encoder_mask=None, decoder_mask=None):
        x = video.flatten(1)
        extra = self.decoder_pos_embed.mean() + self.sensor.logits.mean()  # every parameter gets a gradient
        h = self.patch_embed.proj(x) + self.pos_embed[:, 0] + self.cls_token[:, 0] + extra
        if encoder_mask is not None:
            h = h + self.mask_token[:, 0] * encoder_mask.float().mean(1, keepdim=True)
        for blk in self.blocks:
            h = h + torch.tanh(blk(h))
        return {"pred": self.head(self.norm(h)), "target": x}


def mse_objective(outputs, batch):
    loss = (outputs["pred"].float() - outputs["target"].float()).pow(2).mean()
    return loss, {"mse": loss.item()}


class ToyVideos(Dataset):
    """Deterministic clips ``(3, 2, 4, 4)`` with a tube-like mask; every 8th clip marked substituted."""

    def __init__(self, n: int = 32):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"video": torch.rand(3, 2, 4, 4, generator=g), "encoder_mask": torch.rand(4, generator=g) > 0.5,
                "index": i, "substituted": i % 8 == 0}


def make_run(tmp_path=None, opt="adamw", lr=1e-2):
    from snappix.engine import optim as O

    torch.manual_seed(0)
    model = TinyViT()
    optimizer = O.create_optimizer(model, lr=lr, weight_decay=0.05, opt=opt, opt_betas=(0.9, 0.95))
    return model, optimizer


# ---------------------------------------------------------------------------------------------------
# subprocesses
# ---------------------------------------------------------------------------------------------------
def subprocess_env(fault: str | None = None) -> dict:
    """A clean single-process environment (no torchrun variables, one thread, snappix importable), with
    ``SNAPPIX_FAULT_INJECT=fault`` when given."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "SNAPPIX_FAULT_INJECT")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if fault:
        env["SNAPPIX_FAULT_INJECT"] = fault
    return env


def launch_script(script: Path | str, args, cwd: Path, fault: str | None = None) -> subprocess.Popen:
    """Start ``python script *args`` in ``cwd`` (see :func:`subprocess_env`); :func:`finish` waits for it.
    Independent launches can run side by side (one thread each)."""
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(fault), cwd=cwd)


def finish(proc: subprocess.Popen, expect_rc: int = 0, timeout: int = 300) -> dict | None:
    """Wait for a :func:`launch_script` process; check its exit status (``-9``: killed by SIGKILL); return
    its ``SUMMARY`` JSON line (``None`` when it printed none, e.g. killed)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s\n" + stdout[-3000:] + stderr[-3000:]) from None
    assert proc.returncode == expect_rc, (f"exit {proc.returncode}, expected {expect_rc}\n"
                                          + stdout[-3000:] + stderr[-3000:])
    lines = [ln for ln in stdout.splitlines() if ln.startswith(SUMMARY)]
    return json.loads(lines[-1][len(SUMMARY):]) if lines else None


def run_script(script: Path | str, args, cwd: Path, fault: str | None = None, expect_rc: int = 0,
               timeout: int = 300) -> dict | None:
    """:func:`launch_script` then :func:`finish`."""
    return finish(launch_script(script, args, cwd, fault), expect_rc, timeout)


def print_summary(summary: dict) -> None:
    from snappix.engine import distributed as D

    if D.is_main_process():
        print(SUMMARY + json.dumps(summary), flush=True)


# ---------------------------------------------------------------------------------------------------
# the toy entry point: a method plug trained by the real runner
# ---------------------------------------------------------------------------------------------------
def toy_method():
    """TinyViT + MSE on 32 toy clips, as a method plug."""
    from snappix.engine.method import Method

    return Method(model=TinyViT(), objective=mse_objective, train_set=ToyVideos(32), name="toy")


def toy_main(argv) -> None:
    """Parse -> :func:`start_run` -> :func:`toy_method` -> :func:`fit`; prints a JSON summary on rank 0.

    ``--launch N`` only numbers the launches of one run (the resume note of ``config.yaml`` names it).
    """
    from snappix.engine import args as A
    from snappix.engine import distributed as D
    from snappix.engine.runner import fit, start_run

    parser = A.build_parser("toy")
    parser.add_argument("--launch", type=int, default=1, help="which launch of the run this is")
    args = A.parse_args(parser, argv)
    info = start_run(args, "toy")
    history = fit(args, info, toy_method())
    weights = history["model"].head.weight.detach().float()
    print_summary({"start_epoch": history["start_epoch"],
                   "losses": {str(e): s["loss"] for e, s in history["train"].items()},
                   "head_sum": weights.sum().item(), "next_rand": torch.rand(1).item(),
                   "world_size": info.world_size})
    D.cleanup()


if __name__ == "__main__":
    toy_main(sys.argv[1:])
