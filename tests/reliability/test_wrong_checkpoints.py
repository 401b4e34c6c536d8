"""A checkpoint of another model never gives a silently wrong run (issue 15, item 2).

* ``--finetune`` with a checkpoint of another architecture stops before training, naming the counts and
  keys and ``--finetune_min_loaded`` (it used to train from scratch and exit 0);
* ``--resume`` of another model's checkpoint gives one clear :class:`ModelMismatchError` naming the file
  and the counts (it used to be a raw ``RuntimeError`` listing every size mismatch).
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from conftest import REPO
from snappix.engine import checkpoint as C

pytestmark = pytest.mark.bad_input
sys.path.insert(0, str(REPO))  # run_finetuning

MODEL = ["--model", "video_vit_super_tiny_patch8_112", "--input_size", "32", "--num_frames", "4",
         "--device", "cpu", "--num_workers", "0", "--no_progress", "--nb_classes", "2"]


class _Other(nn.Module):
    """A different architecture: none of its keys exists in a ViT."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 4, 3)
        self.fc = nn.Linear(4, 2)


def _lists(tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("a.mp4 0\nb.mp4 1\n")
    return ["--data_path", str(lst), "--data_root", str(tmp_path)]


def test_finetune_from_another_model_stops_before_training(tmp_path):
    import run_finetuning

    ckpt = tmp_path / "other.pth"
    torch.save({"model": _Other().state_dict()}, ckpt)
    out = tmp_path / "out"
    with pytest.raises(C.ModelMismatchError, match=r"only 0 of \d+ weights .*--finetune_min_loaded 0\.5"):
        run_finetuning.main([*MODEL, *_lists(tmp_path), "--finetune", str(ckpt), "--output_dir", str(out),
                             "--epochs", "1"])
    assert not list(out.glob("checkpoint-*.pth")) and not (out / "log.txt").exists()


def test_finetune_share_threshold_and_same_model_loads(tmp_path):
    import run_finetuning
    from snappix.methods.pretrained import load_pretrained

    args = run_finetuning.build_parser().parse_args([*MODEL, "--data_path", "x"])
    assert args.finetune_min_loaded == 0.5
    src = run_finetuning.build_model(args, 2)
    ckpt = tmp_path / "same.pth"
    torch.save({"model": src.state_dict()}, ckpt)
    report = load_pretrained(run_finetuning.build_model(args, 2), str(ckpt), min_loaded=0.5, verbose=False)
    assert not report.missing
    # the threshold counts: with 0 required, another model's file loads nothing and only warns
    load_pretrained(run_finetuning.build_model(args, 2), {"model": _Other().state_dict()}, min_loaded=0.0,
                    verbose=False)


def test_resume_of_another_model_is_one_clear_error(tmp_path):
    import run_finetuning

    args = run_finetuning.build_parser().parse_args([*MODEL, "--data_path", "x"])
    ckpt = tmp_path / "wide.pth"
    wide = run_finetuning.build_model(args, 7)  # another head: 7 classes
    torch.save({"model": wide.state_dict(), "epoch": 0}, ckpt)
    with pytest.raises(C.ModelMismatchError) as err:
        C.resume(run_finetuning.build_model(args, 2), resume_path=str(ckpt))
    msg = str(err.value)
    assert str(ckpt) in msg and "--resume" in msg and "holds the weights of another model" in msg
    assert "2 shape mismatches (e.g. head.weight" in msg and len(msg.splitlines()) == 1
