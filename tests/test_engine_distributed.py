"""Engine: distributed helpers in one process (collectives, rank discovery, rank-aware logging), the
DeepSpeed config builder, metric meters and the run logger, and that importing the engine stays light
(``snappix.engine.distributed``, ``deepspeed_utils``, ``logging``)."""

from __future__ import annotations

import glob
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from engine_toys import REPO
from snappix.engine import distributed as D
from snappix.engine.deepspeed_utils import build_deepspeed_config
from snappix.engine.logging import MetricMeter, RunLogger


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_deepspeed_config_builder_matches_examples(stage):
    cfg = build_deepspeed_config(32, acc_iters=2, world_size=4, clip_grad=None, zero_stage=stage, precision="bf16",
                                 device="cpu")
    example = json.loads((REPO / "configs" / "deepspeed" / f"zero{stage}.json").read_text())
    example.pop("_comment")
    assert cfg == example
    assert cfg["train_batch_size"] == 256 and cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        build_deepspeed_config(32, precision="fp16", device="cpu", world_size=1)
    with pytest.raises(ValueError, match="zero_stage"):
        build_deepspeed_config(32, zero_stage=3, world_size=1)


# ---------------------------------------------------------------------------------------------------
# distributed helpers (single process) and logging
# ---------------------------------------------------------------------------------------------------
def test_single_process_collectives_are_guarded():
    assert not D.is_dist_avail_and_initialized()
    assert D.get_rank() == 0 and D.get_world_size() == 1 and D.is_main_process()
    D.barrier()
    assert D.all_reduce_mean(3.5) == 3.5
    t = torch.tensor([1.0, 2.0])
    assert D.all_reduce_sum(t) is t
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert D.seed_everything(7, rank=2) == 9
    info = D.init_distributed("cpu", -1, configure_logging=False)
    assert not info.distributed and info.world_size == 1 and info.device.type == "cpu"
    assert D.wrap_ddp(nn.Linear(2, 2), info).__class__ is nn.Linear


def test_setup_logging_rank_levels(capsys):
    import logging
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        D.setup_logging(rank=1)
        logging.getLogger("snappix.test").info("hidden on rank 1")
        logging.getLogger("snappix.test").warning("shown on rank 1")
        D.setup_logging(rank=0)
        logging.getLogger("snappix.test").info("shown on rank 0")
        out = capsys.readouterr().out
        assert "hidden" not in out and "[rank1] WARNING" in out and "[rank0] INFO" in out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_rank_discovery_torchrun_and_slurm():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert D.discover_ranks(-1, env) == (3, 4, 1, "env")
    env = {"RANK": "0", "WORLD_SIZE": "2"}
    assert D.discover_ranks(1, env) == (0, 2, 1, "env")  # legacy launcher: --local-rank flag
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[07-08,12],cpu1"}
    assert D.discover_ranks(-1, env) == (5, 8, 1, "slurm")
    assert env["MASTER_ADDR"] == "gpu07" and env["MASTER_PORT"] == "29500" and env["RANK"] == "5"
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert D.discover_ranks(-1, env)[3] == "single"
    assert D.first_slurm_host("node1,node2") == "node1"
    assert D.first_slurm_host("a[001-004]-ib") == "a001-ib"


def test_metric_meter_and_run_logger(tmp_path):
    m = MetricMeter(window=2)
    m.update(n=4, loss=1.0)
    m.update(n=1, loss=6.0, psnr=20.0)
    m.update(n=1, loss=2.0)
    assert m.averages()["loss"] == pytest.approx((4 + 6 + 2) / 6) and m.averages()["psnr"] == 20.0
    assert m.smoothed()["loss"] == pytest.approx(4.0)
    m.synchronize()  # no-op in one process
    with RunLogger(str(tmp_path), progress=False) as logger:
        logger.scalars({"loss": 0.5, "skip": None}, 0, "train")
        logger.log_epoch(0, train={"loss": torch.tensor(0.5), "substituted": 3}, val={"psnr": np.float32(20.5)},
                         stats={"n_parameters": 10})
        logger.log_epoch(1, train={"loss": float("nan")})
    lines = (tmp_path / "log.txt").read_text().splitlines()
    first = json.loads(lines[0])
    assert first == {"train_loss": 0.5, "train_substituted": 3, "val_psnr": 20.5, "n_parameters": 10, "epoch": 0}
    assert json.loads(lines[1])["train_loss"] == "nan"
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    assert RunLogger(str(tmp_path / "off"), enabled=False).writer is None
    assert not (tmp_path / "off").exists()


def test_engine_import_is_light():
    code = "import sys, snappix.engine; assert 'deepspeed' not in sys.modules; " \
           "import snappix.engine.deepspeed_utils; assert 'deepspeed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
