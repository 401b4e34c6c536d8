"""Masked distillation as a method (``run_pretraining.py --task distill``): the device masks, the teacher batch
transform, and a run end to end with a tiny snappix teacher (no teacher weights in the student's checkpoint,
the teacher's share of the step time logged, resume, clear errors before training)."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from snappix.engine.checkpoint import load_checkpoint
from snappix.masking.factory import DEVICE_MASKS, device_mask, encoder_mask_from_flags
from snappix.methods.distillation import TeacherTargets, build_student
from snappix.objectives.distillation import DistillationLoss
from snappix.teachers import build_teacher
from test_pretraining import run, tiny_data  # noqa: F401  (a fixture)
from test_teachers import snappix_checkpoint  # noqa: F401  (a fixture)

STUDENT = ["--model", "videomamba_super_tiny_pretrain", "--patch_size", "16", "--tubelet_size", "4",
           "--input_size", "32", "--num_frames", "8", "--mask_ratio", "0.5"]


# ------------------------------------------------------------------------------------------------- masks
def test_device_masks_visible_count_per_frame():
    gen = torch.Generator().manual_seed(0)
    for mask_type in DEVICE_MASKS:
        scores = torch.rand(2, 3, 196)
        mask = device_mask(mask_type, scores, 0.8, gen)
        assert mask.shape == (2, 3 * 196) and mask.dtype == torch.bool
        visible = (~mask).reshape(2, 3, 196).sum(-1)
        assert (visible == 196 - int(0.8 * 196)).all() and int(visible[0, 0]) == 40
    odd = device_mask("teacher_attention", torch.rand(1, 2, 10), 0.75, gen)  # any grid: H'W' - int(r H'W')
    assert ((~odd).reshape(2, 10).sum(-1) == 10 - int(0.75 * 10)).all()


def test_teacher_attention_prefers_attended_tokens_and_frame_random_does_not():
    scores = torch.full((1, 1, 16), 0.01)
    scores[0, 0, :4] = 1.0  # four tokens hold 4 / 4.12 of the attention
    gen = torch.Generator().manual_seed(1)
    draws = 400
    kept = {t: torch.zeros(16) for t in DEVICE_MASKS}
    for _ in range(draws):
        for t in DEVICE_MASKS:
            kept[t] += (~device_mask(t, scores, 0.75, gen)).float()[0]  # 4 visible of 16
    attended = kept["teacher_attention"][:4].sum() / (4 * draws)
    assert attended > 0.9  # nearly every visible token is an attended one
    uniform = kept["frame_random"] / draws  # each token visible with p = 4 / 16
    assert (uniform - 0.25).abs().max() < 0.1
    assert kept["frame_random"][:4].sum() / (4 * draws) < 0.4


def test_device_mask_types_refused_on_the_data_side_and_unknown_types():
    with pytest.raises(ValueError, match="--task distill"):
        encoder_mask_from_flags({"mask_type": "teacher_attention", "mask_ratio": 0.8}, (2, 2, 2))
    with pytest.raises(ValueError, match="device mask types"):
        device_mask("tube", torch.rand(1, 2, 4), 0.5)


# ------------------------------------------------------------------------------------------- teacher batch
@pytest.fixture(scope="module")
def teacher_file(snappix_checkpoint):
    """A tiny snappix video-ViT checkpoint (32 px, 8 frames, patch 16, tubelet 4: grid (2, 2, 2))."""
    return snappix_checkpoint[1]


def student_args(**over):
    import argparse
    args = dict(model="videomamba_super_tiny_pretrain", input_size=32, num_frames=8, tubelet_size=4, drop_path=0.0,
                in_chans=1, patch_size=16)
    args.update(over)
    return argparse.Namespace(**args)


def test_teacher_transform_masks_targets_and_no_teacher_gradient(teacher_file):
    teacher = build_teacher("snappix", teacher_file, img_size=32, num_frames=8)
    transform = TeacherTargets(teacher, "teacher_attention", 0.5, torch.device("cpu"), "fp32", seed=0)
    batch = {"video": torch.rand(3, 1, 8, 32, 32)}
    batch = transform(batch)
    assert batch["teacher_targets"].shape == (3, 1 + 8, teacher.dim)
    torch.testing.assert_close(batch["teacher_targets"].norm(dim=-1), torch.ones(3, 9))
    assert ((~batch["encoder_mask"]).reshape(3, 2, 4).sum(-1) == 2).all()
    transform.reseed(4, rank=0)
    first = transform({"video": batch["video"]})["encoder_mask"]
    transform.reseed(4, rank=0)
    assert torch.equal(first, transform({"video": batch["video"]})["encoder_mask"])  # resumable draws

    student = build_student(student_args(), teacher.dim)
    assert tuple(student.grid) == tuple(teacher.grid)
    loss, metrics = DistillationLoss()(student(batch["video"], batch["encoder_mask"]), batch)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())
    assert 0.0 <= metrics["loss"] <= 4.0


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_clips(tiny_data):
    """Eight synthetic clips and their pretraining list (the pretraining tests' data)."""
    return tiny_data


def common(clips, teacher, out):
    return ["--task", "distill", *STUDENT, "--teacher", "snappix", "--teacher_path", str(teacher),
            "--data_path", str(clips / "train.csv"), "--val_path", str(clips / "train.csv"),
            "--data_root", str(clips), "--output_dir", str(out), "--batch_size", "3", "--lr", "1e-3",
            "--warmup_epochs", "0", "--save_ckpt_freq", "10", "--precision", "fp32", "--num_workers", "0",
            "--no_progress", "--device", "cpu", "--seed", "0"]


def test_distill_run_end_to_end_and_resume(tiny_clips, teacher_file, tmp_path):
    out = tmp_path / "run"
    run([*common(tiny_clips, teacher_file, out), "--epochs", "1"], tmp_path)
    ckpt = load_checkpoint(out / "checkpoint-latest.pth")
    teacher = build_teacher("snappix", teacher_file, img_size=32, num_frames=8)
    student = build_student(student_args(), teacher.dim)
    assert set(ckpt["model"]) == set(student.state_dict())  # the student only: no teacher weights
    assert sum(v.numel() for v in ckpt["model"].values()) == sum(v.numel() for v in student.state_dict().values())
    config = (out / "config.yaml").read_text()
    assert "mask_type: teacher_attention" in config and "sampling: sparse" in config
    rows = [json.loads(line) for line in (out / "log.txt").read_text().splitlines()]
    assert 0.0 < rows[0]["train_transform_time_frac"] < 1.0  # the teacher's share of the step time
    assert np.isfinite(rows[0]["train_loss"]) and 0.0 <= rows[-1]["val_loss"] <= 4.0
    second = run([*common(tiny_clips, teacher_file, out), "--epochs", "2"], tmp_path)
    assert "starting at epoch 1" in second.stdout + second.stderr


def test_distill_errors_before_training(tiny_clips, teacher_file, tmp_path):
    missing = run([*common(tiny_clips, tmp_path / "nope.pth", tmp_path / "a"), "--epochs", "1"], tmp_path,
                  check=False)
    assert missing.returncode == 2 and "nope.pth" in missing.stderr
    no_teacher = [a for a in common(tiny_clips, teacher_file, tmp_path / "b") if a not in ("--teacher", "snappix")]
    out = run([*no_teacher, "--epochs", "1"], tmp_path, check=False)
    assert out.returncode == 2 and "--teacher" in out.stderr
    grid = [*common(tiny_clips, teacher_file, tmp_path / "c"), "--epochs", "1"]
    grid[grid.index("--tubelet_size") + 1] = "2"
    out = run(grid, tmp_path, check=False)
    assert out.returncode == 2 and "token grid" in out.stderr
    assert not (tmp_path / "c" / "checkpoint-latest.pth").exists()


# ------------------------------------------------------------------------------------------------------ demo
DEMO = REPO / "scripts" / "demos" / "distill.sh"
LAUNCHER = REPO / "scripts" / "pretrain" / "videomamba_middle_distill.sh"


def test_distill_scripts_and_recipe():
    for path in (DEMO, LAUNCHER):
        assert os.access(path, os.X_OK), f"{path} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
    config = yaml.safe_load((REPO / "configs" / "pretrain" / "videomamba_middle_distill_k400.yaml").read_text())
    assert (config["task"], config["model"], config["mask_type"], config["mask_ratio"]) == \
        ("distill", "videomamba_middle_pretrain", "teacher_attention", 0.8)
    assert config["teacher"] == "vit_base_patch16_clip_quickgelu_224.openai" and config["sampling"] == "sparse"
    assert (config["epochs"], config["warmup_epochs"], config["lr"], config["opt_betas"]) == (800, 40, 1.5e-4,
                                                                                              [0.9, 0.95])


@pytest.mark.slow
def test_distill_demo_fast(tmp_path):
    """The demo end to end with tiny settings (32 clips, 1 epoch per stage): four rows with measured numbers."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(["bash", str(DEMO), "--fast", "--out", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "demo" / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "teacher: video ViT (labels)", "student from scratch", "student, distilled (teacher-attention mask)",
        "student, distilled (uniform mask)"]
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert cells[1] != "n/a" and 0.0 <= float(cells[1].split()[0]) <= 100.0
    assert (tmp_path / "demo" / "distill_attention" / "checkpoint-latest.pth").is_file()
