"""run_pretraining.py --task saccade end to end on tiny synthetic clips with hand-made scanpaths (a width-8 R3D):
an uninterrupted run, and a run SIGKILLed at the start of epoch 2 then auto-resumed, which must end with exactly
the same weights, memory bank and prototypes (the prototypes of epoch 1 are not recomputed after the resume: they
come from the checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine_toys import finish, launch_script
from conftest import REPO
from snappix.data.lists import write_list
from snappix.data.synthetic import render_clip
from snappix.data.video_writer import write_video
from snappix.engine.checkpoint import load_checkpoint
from snappix.scanpaths import write_scanpath

SCRIPT = REPO / "run_pretraining.py"
# 3 epochs, clustering before 1-based epoch 2 only (warm-up 2, every 2 epochs, never before the last one)
FLAGS = ["--task", "saccade", "--model", "r3d", "--width", "8", "--in_chans", "3", "--input_size", "32",
         "--num_frames", "4", "--sampling_rate", "1", "--batch_size", "2", "--epochs", "3", "--opt", "sgd",
         "--lr_scale", "none", "--lr", "0.05", "--lr_sched", "multistep", "--lr_decay_epochs", "2",
         "--lr_decay_rate", "0.2", "--warmup_epochs", "0", "--weight_decay", "1e-4", "--num_clusters", "3", "4",
         "--fs_warmup_epoch", "2", "--cluster_freq", "2", "--nce_k", "8", "--focus_num", "3", "--deduplicate", "True",
         "--margin_h", "12", "--grid_num", "7", "--lr_ratio", "0.001", "--pro_p", "1", "--num_workers", "0",
         "--no_progress", "--device", "cpu", "--precision", "fp32", "--seed", "5", "--save_ckpt_freq", "10", "--cache_videos"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("saccade")
    (root / "v").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        write_video(str(root / "v" / f"c{i}.mp4"), render_clip(i, 20, 48, 64, rng=rng))
        # the second row repeats the first cell: deduplicated away, the third fixation is padding
        write_scanpath(root / "scan" / "v" / f"c{i}.txt", np.array([[i, 0, 5], [i, 6, 9], [10 + i, 10, 17]]))
    write_list(root / "train.csv", [(f"v/c{i}.mp4", 0, -1) for i in range(4)], "pretrain")
    return root


def _args(clips, out):
    return [*FLAGS, "--data_path", clips / "train.csv", "--data_root", clips, "--scanpath_root", clips / "scan",
            "--output_dir", out]


def test_saccade_pretraining_killed_and_resumed_equals_an_uninterrupted_run(clips, tmp_path):
    full_proc = launch_script(SCRIPT, _args(clips, tmp_path / "full"), tmp_path)
    cut_proc = launch_script(SCRIPT, _args(clips, tmp_path / "cut"), tmp_path, fault="train_step:kill@epoch=2")
    finish(full_proc, timeout=400)
    finish(cut_proc, expect_rc=-9, timeout=400)  # SIGKILLed before the first forward of epoch 2
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint-latest.pth")
    assert saved["epoch"] == 1
    obj = saved["objective"]
    assert obj["nce.memory"].shape == (12, 64)  # 4 videos x 3 fixations, 8 * width
    assert bool(obj["pcl.active"]) and obj["pcl.centroids_0"].shape == (3, 512)
    assert obj["pcl.centroids_1"].abs().sum() > 0 and obj["pcl.density_1"].shape == (4,)
    assert "projection.linear.weight" in saved["model"] and any(k.startswith("pixpro.") for k in saved["model"])

    resumed = launch_script(SCRIPT, _args(clips, tmp_path / "cut"), tmp_path)
    out = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out[0][-2000:] + out[1][-3000:]
    assert "starting at epoch 2" in out[0] + out[1]
    assert "prototypes recomputed" not in out[0] + out[1]  # restored from the checkpoint, not reclustered

    full = load_checkpoint(tmp_path / "full" / "checkpoint-latest.pth")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint-latest.pth")
    assert full["epoch"] == cut["epoch"] == 2
    assert full["model"].keys() == cut["model"].keys() and full["objective"].keys() == cut["objective"].keys()
    for k in full["model"]:
        assert torch.equal(full["model"][k], cut["model"][k]), k
    for k in full["objective"]:
        assert torch.equal(full["objective"][k], cut["objective"][k]), k
    assert not torch.equal(full["objective"]["nce.memory"], obj["nce.memory"])  # the bank kept moving
    rows = [json.loads(line) for line in (tmp_path / "cut" / "log.txt").read_text().splitlines()]
    full_rows = [json.loads(line) for line in (tmp_path / "full" / "log.txt").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in full_rows]
    assert rows[0]["train_proto_loss"] == 0 and all(r["train_proto_loss"] > 0 for r in rows[1:])
    assert [r["train_lr"] for r in rows] == pytest.approx([0.05, 0.05, 0.01])
    assert all(np.isfinite(r["train_nce_loss"]) and r["train_pred_loss"] > 0 for r in rows)


@pytest.mark.parametrize("arch, epochs, batch, pro_p, warmup", [("r3d", 300, 16, 1.0, 241), ("r21d", 360, 8, 4.0, 301)])
def test_shipped_recipes_parse_with_the_reference_values(arch, epochs, batch, pro_p, warmup):
    from run_pretraining import build_parser
    from snappix.engine.args import parse_args
    from snappix.methods import saccade as plug

    args = parse_args(build_parser(), ["--config", str(REPO / "configs" / "pretrain" / f"saccade_{arch}_ucf101.yaml"),
                                       "--data_path", "x.csv", "--scanpath_root", str(REPO)])
    plug.check(args)
    assert args.task == "saccade" and args.model == f"saccade_{arch}" and args.in_chans == 3
    assert (args.opt, args.momentum, args.weight_decay, args.lr, args.lr_scale) == ("sgd", 0.9, 1e-4, 0.1, "none")
    assert (args.lr_sched, args.lr_decay_epochs, args.lr_decay_rate, args.warmup_epochs) == \
        ("multistep", [90, 180, 240], 0.2, 0)
    assert (args.epochs, args.batch_size, args.pro_p, args.fs_warmup_epoch, args.cluster_freq) == \
        (epochs, batch, pro_p, warmup, 5)
    assert (args.num_clusters, args.focus_num, args.grid_num, args.deduplicate, args.margin_h, args.lr_ratio) == \
        ([1500, 1500, 1500], 3, 7, True, 12, 0.001)
    script = REPO / "scripts" / "pretrain" / f"saccade_{arch}.sh"
    assert script.stat().st_mode & 0o111 and f"configs/pretrain/saccade_{arch}_ucf101.yaml" in script.read_text()
