"""Engine: checkpoints (``snappix.engine.checkpoint``): atomic saves, weights-only loading, RNG round
trip, auto-resume fallback from unreadable files, checkpoint names, foreign pickles and the state-dict
report."""

from __future__ import annotations

import glob
import os
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from engine_toys import TinyViT, ToyVideos, make_run, mse_objective
from snappix.engine import args as A
from snappix.engine import checkpoint as C
from snappix.engine import loop as L
from snappix.engine import precision as P


# ---------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------
def _train_a_bit(model, optimizer, scaler=None):
    loader = DataLoader(ToyVideos(8), batch_size=4)
    return L.train_one_epoch(model, mse_objective, loader, optimizer, "cpu", 0, np.full(2, 1e-2),
                             steps_per_epoch=2, precision="fp32", scaler=scaler)


def test_checkpoint_round_trip_weights_only_and_rng(tmp_path):
    model, optimizer = make_run()
    scaler = P.LossScaler("fp32", "cpu")
    _train_a_bit(model, optimizer, scaler)
    config = A.config_dict(A.parse_args(A.build_parser(), ["--lr", "1e-3"]))
    written = C.save_checkpoint(tmp_path, model, optimizer, scaler, epoch=4, global_step=10, config=config,
                                num_epochs=5, save_ckpt_freq=2, extra={"best_psnr": np.float64(21.5)})
    assert [os.path.basename(p) for p in written] == ["checkpoint-latest.pth", "checkpoint-4.pth"]
    # the RNG draws right after saving ...
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])

    state = torch.load(tmp_path / "checkpoint-latest.pth", weights_only=True)  # plain data only
    assert state["epoch"] == 4 and state["global_step"] == 10 and state["config"]["lr"] == 1e-3
    assert state["best_psnr"] == 21.5 and type(state["best_psnr"]) is float
    assert state["rng"][0]["torch"].dtype == torch.uint8
    torch.load(tmp_path / "checkpoint-4.pth", weights_only=True)

    # ... are repeated after resuming into fresh objects, whose state equals the saved one
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    model2, optimizer2 = make_run()
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(1.0)
    scaler2 = P.LossScaler("fp32", "cpu")
    info = C.resume(model2, optimizer2, scaler2, output_dir=tmp_path)
    assert (info.start_epoch, info.global_step) == (5, 10)
    assert info.path.endswith("checkpoint-latest.pth")
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), n
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["exp_avg"], s2["state"][k]["exp_avg"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


@pytest.mark.parametrize("failing", ["torch.save", "os.replace"])
def test_atomic_save_failure_keeps_previous_checkpoint(tmp_path, monkeypatch, failing):
    model, optimizer = make_run()
    C.save_checkpoint(tmp_path, model, optimizer, None, epoch=0, global_step=1)
    before = (tmp_path / "checkpoint-latest.pth").read_bytes()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    if failing == "torch.save":
        monkeypatch.setattr(torch, "save", disk_full)
    else:
        monkeypatch.setattr(os, "replace", disk_full)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    with pytest.raises(C.CheckpointError, match=r"checkpoint-latest\.pth.*No space left.*previous file is unchanged"):
        C.save_checkpoint(tmp_path, model, optimizer, None, epoch=1, global_step=2)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint-latest.pth").read_bytes() == before
    assert C.load_checkpoint(tmp_path / "checkpoint-latest.pth")["epoch"] == 0
    assert not glob.glob(str(tmp_path / "*.tmp*"))


def test_auto_resume_falls_back_from_truncated_checkpoints(tmp_path, caplog):
    model, optimizer = make_run()
    for epoch in range(4):  # freq 2 -> checkpoint-1, checkpoint-3, latest = 3
        C.save_checkpoint(tmp_path, model, optimizer, None, epoch=epoch, global_step=10 * (epoch + 1),
                          save_ckpt_freq=2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1.pth", "checkpoint-3.pth", "checkpoint-latest.pth"]
    latest = tmp_path / "checkpoint-latest.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # preempted mid-copy
    path, state = C.find_resume_checkpoint(tmp_path)
    assert path.endswith("checkpoint-3.pth") and state["epoch"] == 3
    assert "checkpoint-latest.pth" in caplog.text  # warned about the unreadable file
    (tmp_path / "checkpoint-3.pth").write_bytes(b"garbage")
    info = C.resume(TinyViT(), None, output_dir=tmp_path)
    assert info.path.endswith("checkpoint-1.pth") and info.start_epoch == 2 and info.global_step == 20
    # --no_auto_resume starts fresh; an explicit unreadable --resume is an error, not a silent fallback
    assert C.resume(TinyViT(), None, output_dir=tmp_path, auto_resume=False).start_epoch == 0
    with pytest.raises(C.CheckpointError, match="cannot read checkpoint"):
        C.resume(TinyViT(), None, output_dir=tmp_path, resume_path=str(latest))
    assert C.find_resume_checkpoint(tmp_path / "missing") is None


def test_checkpoint_names_and_foreign_checkpoint(tmp_path):
    assert C.checkpoint_names(18, 300, 20) == ["latest"]
    assert C.checkpoint_names(19, 300, 20) == ["latest", "19"]
    assert C.checkpoint_names(299, 300, 20, best=True) == ["latest", "299", "best"]
    import argparse
    torch.save({"model": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "foreign.pth")
    with pytest.raises(C.CheckpointError, match="argparse.Namespace|trusted"):
        C.load_checkpoint(tmp_path / "foreign.pth")
    assert C.load_checkpoint(tmp_path / "foreign.pth", trusted=True)["args"].lr == 1


def test_load_state_dict_report(caplog):
    src = TinyViT().state_dict()
    src["module.extra.weight"] = torch.zeros(2)
    src["head.weight"] = torch.zeros(5, 5)
    del src["norm.bias"]
    model = TinyViT()
    report = C.load_state_dict_report(model, {"model": src})
    assert set(report.missing) == {"norm.bias", "head.weight"}
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == [("head.weight", (5, 5), (96, 8))]
    assert torch.equal(model.pos_embed, src["pos_embed"])
    assert "missing" in caplog.text and "unexpected" in caplog.text
    with pytest.raises(RuntimeError):
        C.load_state_dict_report(TinyViT(), src, strict=True)
