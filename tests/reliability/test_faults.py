"""Faults a long run must survive without losing anything.

* ``kill -9`` during training and during a checkpoint save: the next launch resumes at the right epoch
  and reaches exactly the state of an uninterrupted run (run_pretraining.py, tiny model, CPU);
* a truncated latest checkpoint: auto-resume falls back to the newest readable one, with a warning;
* a full disk on save: a clear error, the previous checkpoint intact, no partial file;
* an injected NaN loss: stop naming step, lr and checkpoint, weights untouched; ``--skip_nonfinite``;
* a killed or hung DataLoader worker: reported with the item (file and list line) being loaded;
* one of two DDP ranks killed or failing: every rank exits, non-zero, the error shown; the next launch resumes.

Process-level faults use ``SNAPPIX_FAULT_INJECT`` (:mod:`snappix.engine.faults`).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO
from snappix.data.lists import write_list
from snappix.data.synthetic import render_clip
from snappix.data.video_writer import write_video
from snappix.engine import checkpoint as C
from snappix.engine.distributed import DistInfo
from snappix.engine.loader_guard import DataLoaderError
from snappix.engine.loop import NonFiniteBudget, train_one_epoch
from snappix.engine.precision import NonFiniteLossError
from snappix.engine.runner import build_loader

pytestmark = pytest.mark.fault

EPOCHS = 3
TINY = ["--model", "pretrain_coded_videomae_super_tiny_patch8_112", "--coded_type", "naive_learned",
        "--input_size", "32", "--num_frames", "4", "--sampling_rate", "2", "--mask_ratio", "0.75",
        "--decoder_depth", "1", "--num_workers", "0", "--no_progress", "--device", "cpu", "--seed", "3",
        "--batch_size", "2", "--lr", "0.05", "--warmup_epochs", "1", "--precision", "fp32",
        "--save_ckpt_freq", "1", "--epochs", str(EPOCHS)]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "SNAPPIX_FAULT_INJECT")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def pretrain(data: Path, out: Path, cwd: Path, fault: str | None = None, nproc: int = 1, timeout: int = 300,
             extra: tuple = ()) -> subprocess.CompletedProcess:
    """run_pretraining.py on the tiny data (under torchrun when ``nproc > 1``)."""
    args = [*TINY, "--data_path", str(data / "train.csv"), "--data_root", str(data), "--output_dir", str(out), *extra]
    script = str(REPO / "run_pretraining.py")
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(29600 + os.getpid() % 900), script, *args]
    else:
        cmd = [sys.executable, script, *args]
    env = _env(**({"SNAPPIX_FAULT_INJECT": fault} if fault else {}))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _epochs(out: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (out / "log.txt").read_text().splitlines()]


def _assert_complete(out: Path) -> None:
    """Every file under a checkpoint name loads (weights_only)."""
    for path in out.glob("checkpoint-*.pth"):
        C.load_checkpoint(path)


def _assert_same_model(a: Path, b: Path) -> None:
    ma, mb = C.load_checkpoint(a)["model"], C.load_checkpoint(b)["model"]
    assert ma.keys() == mb.keys()
    for k in ma:
        assert torch.equal(ma[k], mb[k]), k


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny data")  # paths with spaces, on purpose
    rng = np.random.default_rng(0)
    for i in range(8):
        write_video(str(root / f"c{i}.mp4"), render_clip(i % 8, 12, 40, 48, rng=rng))
    write_list(root / "train.csv", [(f"c{i}.mp4", 0, -1) for i in range(8)], "pretrain")
    return root


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> Path:
    """An uninterrupted run; also checks nothing is written outside --output_dir."""
    base = tmp_path_factory.mktemp("reference")
    cwd = base / "cwd"
    cwd.mkdir()
    before = sorted(p.name for p in tiny_data.iterdir())
    _ok(pretrain(tiny_data, base / "out", cwd))
    assert list(cwd.iterdir()) == [] and sorted(p.name for p in tiny_data.iterdir()) == before
    assert _epochs(base / "out") == list(range(EPOCHS))
    return base / "out"


# ---------------------------------------------------------------------------------------------------
# kill -9 (training, checkpoint save), then resume to the identical state
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault,saved", [
    ("train_step:kill@epoch=1,step=5", 0),   # killed in the middle of epoch 1 (4 steps per epoch)
    ("save:kill@epoch=1", 0),                # killed while writing epoch 1's checkpoint (temp file written)
])
def test_kill_minus_nine_then_resume_identically(tiny_data, reference, tmp_path, fault, saved):
    out = tmp_path / "out dir"
    killed = pretrain(tiny_data, out, tmp_path, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    _assert_complete(out)  # no partial file under a checkpoint name
    assert C.load_checkpoint(out / "checkpoint-latest.pth")["epoch"] == saved
    if fault.startswith("save"):
        assert list(out.glob("checkpoint-latest.pth.tmp.*")), "the save was interrupted after its temp file"
    text = _ok(pretrain(tiny_data, out, tmp_path))
    assert f"starting at epoch {saved + 1}" in text
    assert _epochs(out) == list(range(EPOCHS))
    assert not list(out.glob("*.tmp.*")), "the interrupted save's temporary file was cleaned up"
    _assert_same_model(reference / "checkpoint-latest.pth", out / "checkpoint-latest.pth")


# ---------------------------------------------------------------------------------------------------
# checkpoints: truncated latest, disk full
# ---------------------------------------------------------------------------------------------------
class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, video):
        return self.fc(video.flatten(1))


def _toy_state(seed: int) -> tuple[Toy, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Toy()
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def test_truncated_latest_checkpoint_falls_back_with_warning(tmp_path, caplog):
    for epoch in range(3):
        model, opt = _toy_state(epoch)
        C.save_checkpoint(tmp_path, model, opt, None, epoch, 10 * (epoch + 1), num_epochs=10, save_ckpt_freq=2)
    # on disk: checkpoint-1.pth (epoch 1), checkpoint-latest.pth (epoch 2)
    latest = tmp_path / C.LATEST
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    fresh, opt = _toy_state(99)
    with caplog.at_level(logging.WARNING):
        info = C.resume(fresh, opt, None, tmp_path)
    assert info.start_epoch == 2 and info.path == str(tmp_path / "checkpoint-1.pth") and info.global_step == 20
    text = caplog.text
    assert "skipping unreadable checkpoint" in text and str(latest) in text and "instead of" in text
    expected, _ = _toy_state(1)
    for k, v in expected.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_disk_full_on_save_raises_and_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _toy_state(0)
    C.save_checkpoint(tmp_path, model, opt, None, 0, 5)
    before = (tmp_path / C.LATEST).read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):  # half the bytes reach the disk, then ENOSPC
        real_save(obj, f, *a, **k)
        f.seek(0)
        f.truncate(len(before) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    model2, opt2 = _toy_state(1)
    with pytest.raises(C.CheckpointError, match=r"checkpoint-latest\.pth.*No space left.*previous file is "
                                                r"unchanged.*disk full"):
        C.save_checkpoint(tmp_path, model2, opt2, None, 1, 10)
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / C.LATEST).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [C.LATEST]  # no temp file left
    assert C.load_checkpoint(tmp_path / C.LATEST)["epoch"] == 0


# ---------------------------------------------------------------------------------------------------
# NaN loss
# ---------------------------------------------------------------------------------------------------
def _nan_at(steps: set[int]):
    calls = {"n": 0}

    def objective(outputs, batch):
        loss = outputs.float().pow(2).mean()
        i = calls["n"]
        calls["n"] += 1
        return (loss * float("nan") if i in steps else loss), {}

    return objective


def _batches(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return [{"video": torch.randn(2, 1, 1, 2, 2, generator=g)} for _ in range(n)]


def test_injected_nan_loss_stops_with_step_lr_checkpoint_or_is_skipped(tmp_path, caplog):
    model, opt = _toy_state(0)
    C.save_checkpoint(tmp_path, model, opt, None, 0, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lrs = np.linspace(0.1, 0.01, 8)
    with pytest.raises(NonFiniteLossError) as err:  # NaN at the first step of epoch 1 = global step 4
        train_one_epoch(model, _nan_at({0}), _batches(), opt, "cpu", 1, lrs, precision="fp32",
                        last_checkpoint=C.latest_checkpoint(tmp_path))
    msg = str(err.value)
    assert f"loss is nan at epoch 1, optimizer step 4 (lr {lrs[4]:.4g})" in msg and str(tmp_path / C.LATEST) in msg
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # no step taken
    assert C.load_checkpoint(tmp_path / C.LATEST)["epoch"] == 0

    budget = NonFiniteBudget(1)  # --skip_nonfinite 1: one skip, then the next NaN stops the run
    with caplog.at_level(logging.WARNING):
        stats = train_one_epoch(model, _nan_at({1}), _batches(), opt, "cpu", 1, lrs, precision="fp32",
                                skip_nonfinite=budget)
    assert stats["nonfinite_skipped"] == 1 and stats["steps"] == 4 and np.isfinite(stats["loss"])
    assert budget.events == [(1, 5, pytest.approx(lrs[5]), pytest.approx(float("nan"), nan_ok=True))]
    assert "loss is nan at epoch 1, optimizer step 5" in caplog.text and "1 of --skip_nonfinite 1" in caplog.text
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # the others stepped
    with pytest.raises(NonFiniteLossError, match="--skip_nonfinite 1: all 1 allowed skips were used"):
        train_one_epoch(model, _nan_at({2}), _batches(), opt, "cpu", 1, lrs, precision="fp32",
                        skip_nonfinite=budget)


# ---------------------------------------------------------------------------------------------------
# DataLoader workers: killed, hung
# ---------------------------------------------------------------------------------------------------
class Clips(torch.utils.data.Dataset):
    """8 tiny clips; item ``bad`` kills its worker (``kill``) or sleeps (``hang``)."""

    def __init__(self, bad: int, how: str):
        self.bad, self.how = bad, how

    def __len__(self):
        return 8

    def describe_item(self, item):
        return f"clip_{item}.mp4 (train.csv:{item + 1})"

    def __getitem__(self, item):
        if item == self.bad:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(120)
        return {"video": torch.full((1, 1, 2, 2), float(item))}


@pytest.mark.parametrize("how", ["kill", "hang"])
def test_dead_or_hung_loader_worker_is_reported_with_its_item(how):
    args = argparse.Namespace(seed=0, batch_size=2, num_workers=2, pin_mem=False, loader_timeout=3)
    loader, _ = build_loader(Clips(5, how), args, DistInfo(), train=False)  # items in order: 5 is in batch 2
    model, opt = _toy_state(0)
    with pytest.raises(DataLoaderError) as err:
        train_one_epoch(model, lambda o, b: (o.float().pow(2).mean(), {}), loader, opt, "cpu", 0,
                        np.full(4, 0.1), precision="fp32")
    msg = str(err.value)
    assert re.search(r"worker \d \(pid \d+\): was loading item 5: clip_5\.mp4 \(train\.csv:6\)", msg), msg
    if how == "kill":
        assert "killed by signal" in msg or "exited unexpectedly" in msg
    else:
        assert "timed out after 3" in msg and "--loader_timeout 3 s" in msg


# ---------------------------------------------------------------------------------------------------
# DDP: one of two ranks killed or failing
# ---------------------------------------------------------------------------------------------------
def _terminated_pids(text: str) -> list[int]:
    return [int(p) for p in re.findall(r"Sending process (\d+) closing signal SIGTERM", text)]


@pytest.mark.parametrize("action", [pytest.param("kill", marks=pytest.mark.slow), "raise"])
def test_one_ddp_rank_fails_all_exit_and_next_launch_resumes(tiny_data, tmp_path, action):
    """torchrun, 2 gloo processes: rank 1 is SIGKILLed (slow variant) or raises in epoch 1."""
    out = tmp_path / "out dir"
    two = ("--epochs", "2")  # rank 1 fails in the second (last) epoch
    failed = pretrain(tiny_data, out, tmp_path, fault=f"train_step:{action}@rank=1,epoch=1", nproc=2, extra=two)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0, text[-3000:]
    assert re.search(r"rank\s*:\s*1", text), text[-3000:]  # torchrun's report names the failing rank
    if action == "kill":
        assert "Signal 9 (SIGKILL)" in text or "exitcode  : -9" in text, text[-3000:]
    else:  # the failing rank's own error is in the launcher's summary
        assert "InjectedFault: injected fault (SNAPPIX_FAULT_INJECT) at train_step" in text, text[-3000:]
    for pid in _terminated_pids(text):  # the surviving rank was stopped, not left waiting in a collective
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert C.load_checkpoint(out / "checkpoint-latest.pth")["epoch"] == 0
    _assert_complete(out)
    again = _ok(pretrain(tiny_data, out, tmp_path, nproc=2, extra=two))
    assert "starting at epoch 1" in again and _epochs(out) == [0, 1]
