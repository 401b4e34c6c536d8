"""run_finetuning.py: class-count checks, a tiny finetune from a pretraining checkpoint with the
multi-view report, mixup before the sensor, and 2-process --eval --dist_eval == 1 process."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

import snappix.models  # noqa: F401
from conftest import REPO
from snappix.data.lists import write_list
from snappix.data.mixup import VideoMixup
from snappix.data.synthetic import render_clip
from snappix.data.video_writer import write_video
from snappix.engine.loop import train_one_epoch
from snappix.objectives import ClassificationLoss

sys.path.insert(0, str(REPO))
import run_finetuning  # noqa: E402

TINY = ["--input_size", "32", "--short_side_size", "32", "--num_frames", "4", "--sampling_rate", "2",
        "--num_workers", "0", "--no_progress", "--device", "cpu", "--seed", "1", "--coded_type", "naive_learned"]


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for split, count in (("train", 8), ("val", 4)):
        for i in range(count):
            rel = f"{split}/c{i}.mp4"
            (root / split).mkdir(exist_ok=True)
            write_video(str(root / rel), render_clip(i % 4, 12, 40, 64, rng=rng))
            rows[split].append((rel, i % 4))
    write_list(root / "train.csv", rows["train"], "cls")
    write_list(root / "val.csv", rows["val"], "cls")
    return root


def run(args, cwd, nproc=1):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     "--nproc_per_node", str(nproc)]
    out = subprocess.run([*launcher, str(REPO / "run_finetuning.py"), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]
    return out


def test_nb_classes_checked_against_data_set_and_labels(lists, tmp_path):
    parser = run_finetuning.build_parser()
    args = parser.parse_args(["--model", "c3d", "--data_path", str(lists), "--data_set", "UCF101", "--nb_classes", "100"])
    with pytest.raises(ValueError, match="does not match --data_set UCF101 \\(101 classes\\)"):
        run_finetuning.check_classes(args, run_finetuning.resolve_lists(args))
    args = parser.parse_args(["--model", "c3d", "--data_path", str(lists), "--nb_classes", "3"])
    with pytest.raises(ValueError, match=r"train.csv:4: label 3 out of range for --nb_classes 3"):
        run_finetuning.check_classes(args, run_finetuning.resolve_lists(args))
    args = parser.parse_args(["--model", "c3d", "--data_path", str(lists)])
    with pytest.raises(ValueError, match="needs --nb_classes"):
        run_finetuning.check_classes(args, run_finetuning.resolve_lists(args))
    assert run_finetuning.resolve_lists(args) == (str(lists / "train.csv"), str(lists / "val.csv"),
                                                  str(lists / "val.csv"))


def test_mixup_is_applied_to_the_raw_clip_before_the_sensor():
    model = timm.create_model("coded_vit_super_tiny_patch8_112", num_classes=4, coded_type="naive_learned",
                              img_size=32, num_frames=4)
    seen = []
    model.sensor.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    video = torch.zeros(2, 1, 4, 32, 32)
    video[0] += 1.0  # clip 0 white, clip 1 black
    batch = {"video": video, "label": torch.tensor([0, 1])}
    mixup = VideoMixup(num_classes=4, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    np.random.seed(0)
    optim = torch.optim.SGD(model.parameters(), lr=0.0)
    train_one_epoch(model, ClassificationLoss(0.0, mixup_active=True), [batch], optim, "cpu", 0, np.zeros(1),
                    precision="fp32", model_inputs=(), batch_transform=mixup.batch_transform)
    raw = seen[0]
    assert raw.shape == (2, 1, 4, 32, 32)  # the sensor got the raw 4-frame clip, not a coded image
    lam = raw[0].mean().item()  # clip 0 became lam * white + (1 - lam) * black
    assert 0 < lam < 1 and torch.allclose(raw[0], torch.full_like(raw[0], lam))
    assert torch.allclose(raw[1], torch.full_like(raw[1], 1 - lam))


def test_finetune_from_pretraining_checkpoint_then_multiview_test(lists, tmp_path):
    pre = timm.create_model("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="naive_learned",
                            img_size=32, num_frames=4)
    torch.save({"model": pre.state_dict(), "epoch": 0}, tmp_path / "pre.pth")
    out = tmp_path / "ft"
    proc = run(["--model", "coded_vit_super_tiny_patch8_112", *TINY, "--data_path", str(lists),
                "--data_root", str(lists), "--nb_classes", "4", "--finetune", str(tmp_path / "pre.pth"),
                "--output_dir", str(out), "--batch_size", "4", "--epochs", "2", "--warmup_epochs", "1",
                "--lr", "0.05", "--test_num_segment", "2", "--test_num_crop", "3", "--precision", "fp32"], tmp_path)
    text = proc.stdout + proc.stderr
    assert "missing (4): ['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']" in text
    assert (out / "checkpoint-best.pth").is_file()
    rows = [json.loads(line) for line in (out / "log.txt").read_text().splitlines()]
    assert all("val_acc1" in r for r in rows if "train_loss" in r)  # validation every epoch
    summary = json.loads((out / "test" / "multiview_summary.json").read_text())
    assert summary["num_videos"] == 4 and summary["views_per_video"] == 6
    with open(out / "test" / "per_class_accuracy.csv") as f:
        assert len(list(csv.reader(f))) == 5
    assert (out / "test" / "confusion_matrix.png").is_file()


def test_two_process_dist_eval_gives_the_same_video_predictions(lists, tmp_path):
    model = timm.create_model("coded_vit_super_tiny_patch8_112", num_classes=4, coded_type="naive_learned",
                              img_size=32, num_frames=4)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"model": model.state_dict(), "epoch": 0}, ckpt / "checkpoint-best.pth")
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"eval{nproc}"
        run(["--model", "coded_vit_super_tiny_patch8_112", *TINY, "--data_path", str(lists), "--data_root",
             str(lists), "--nb_classes", "4", "--eval", "--dist_eval", "--resume", str(ckpt / "checkpoint-best.pth"),
             "--output_dir", str(out), "--test_num_segment", "2", "--test_num_crop", "3", "--precision", "fp32"],
            tmp_path, nproc)
        with open(out / "test" / "video_predictions.csv") as f:
            results[nproc] = list(csv.DictReader(f))
    assert len(results[1]) == 4
    assert [r["pred"] for r in results[1]] == [r["pred"] for r in results[2]]
    for a, b in zip(results[1], results[2]):
        assert a == b
