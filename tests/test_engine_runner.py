"""Engine end to end (``snappix.engine.runner``): a toy entry point (``tests/engine_toys.py``: a method
plug of TinyViT + MSE on toy clips, trained by ``start_run`` + ``fit``) is killed for real with SIGKILL
(``SNAPPIX_FAULT_INJECT=train_step:kill@epoch=2``: before the first forward of epoch 2, after the
checkpoint of epoch 1) and launched again; the auto-resumed run must equal an uninterrupted one bit for
bit. The same toy also runs under torchrun::

    torchrun --nproc_per_node 2 tests/engine_toys.py --output_dir /tmp/x --device cpu --epochs 3 --warmup_epochs 1
"""

from __future__ import annotations

import json

import pytest

import engine_toys
from engine_toys import TOY_FLAGS, finish, launch_script
from snappix.engine import args as A
from snappix.engine import checkpoint as C

KILL_AT_EPOCH_2 = "train_step:kill@epoch=2"
SIGKILLED = -9


def _log(out) -> list[dict]:
    return [json.loads(x) for x in (out / "log.txt").read_text().splitlines()]


def _check_preempted_run_matches(tmp_path, *flags):
    script, toy = engine_toys.__file__, [*TOY_FLAGS, *flags]
    # the uninterrupted reference and the launch that gets killed are independent: run them side by side
    full_proc = launch_script(script, [*toy, "--output_dir", "full"], tmp_path)
    cut_proc = launch_script(script, [*toy, "--output_dir", "cut"], tmp_path, fault=KILL_AT_EPOCH_2)
    full = finish(full_proc)
    assert finish(cut_proc, expect_rc=SIGKILLED) is None  # SIGKILLed: no summary, no clean-up
    cut = tmp_path / "cut"
    assert [r["epoch"] for r in _log(cut)] == [0, 1]
    assert C.load_checkpoint(cut / "checkpoint-latest.pth")["epoch"] == 1

    second = finish(launch_script(script, [*toy, "--output_dir", "cut", "--launch", "2"], tmp_path))  # auto-resume
    assert full["start_epoch"] == 0 and second["start_epoch"] == 2
    assert list(second["losses"]) == ["2"]
    assert second["losses"]["2"] == full["losses"]["2"]     # bit-exact: data order, RNG, optimiser restored
    assert second["head_sum"] == full["head_sum"] and second["next_rand"] == full["next_rand"]
    log, full_log = _log(cut), _log(tmp_path / "full")
    assert [r["epoch"] for r in log] == [0, 1, 2]
    # the killed launch's epochs 0 and 1 are those of the uninterrupted run
    assert [r["train_loss"] for r in log] == [r["train_loss"] for r in full_log] == \
        [full["losses"][str(e)] for e in range(3)]
    parser = A.build_parser()
    parser.add_argument("--launch", type=int, default=1)
    again = A.parse_args(parser, ["--config", str(cut / "config.yaml")])
    # config.yaml keeps the run's first launch; the resumed launch appended a note naming what changed
    assert again.acc_iters == 2 and again.lr == 1e-2 and again.launch == 1
    assert "launch: 1 -> 2" in (cut / "config.yaml").read_text().splitlines()[-1]


def test_preempted_run_resumes_bit_exactly(tmp_path):
    _check_preempted_run_matches(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 2])
def test_deepspeed_preempted_run_resumes_bit_exactly(tmp_path, stage):
    pytest.importorskip("deepspeed")
    _check_preempted_run_matches(tmp_path, "--enable_deepspeed", "--zero_stage", str(stage), "--clip_grad", "1.0")
