"""run_pretraining.py end to end: a run on synthetic clips, 2-process DDP == 1 process with twice the
batch, DeepSpeed ZeRO-1 train/save/resume (slow), kill -9 and resume on the real clips."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, shared_videos_dir
from snappix.data.lists import write_list
from snappix.data.synthetic import render_clip
from snappix.data.video_writer import write_video
from snappix.engine.checkpoint import load_checkpoint

PATTERNS = REPO.parent / "shared" / "data" / "snappix_patterns"
# tiny geometry: 4 frames of 32x32 -> token grid (2, 4, 4); tube 0.75 hides 12 of 16 per frame
TINY = ["--model", "pretrain_coded_videomae_super_tiny_patch8_112", "--coded_type", "naive_learned",
        "--input_size", "32", "--num_frames", "4", "--sampling_rate", "2", "--mask_ratio", "0.75",
        "--decoder_depth", "1", "--num_workers", "0", "--no_progress", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for i in range(8):
        write_video(str(root / f"c{i}.mp4"), render_clip(i % 8, 12, 40, 48, rng=rng))
    write_list(root / "train.csv", [(f"c{i}.mp4", 0, -1) for i in range(8)], "pretrain")
    return root


def run(args, cwd, nproc=1, timeout=600, check=True):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(29500 + os.getpid() % 1000), str(REPO / "run_pretraining.py"), *args]
    else:
        cmd = [sys.executable, str(REPO / "run_pretraining.py"), *args]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]
    return out


def log_rows(out_dir):
    return [json.loads(line) for line in (out_dir / "log.txt").read_text().splitlines()]


def test_pretraining_run_writes_checkpoints_logs_config_and_resumes(tiny_data, tmp_path):
    out = tmp_path / "run"
    common = [*TINY, "--data_path", str(tiny_data / "train.csv"), "--data_root", str(tiny_data),
              "--output_dir", str(out), "--batch_size", "2", "--lr", "0.05", "--warmup_epochs", "1",
              "--save_ckpt_freq", "2", "--precision", "fp32"]
    run([*common, "--epochs", "2"], tmp_path)
    assert sorted(p.name for p in out.glob("checkpoint-*.pth")) == ["checkpoint-1.pth", "checkpoint-latest.pth"]
    ckpt = load_checkpoint(out / "checkpoint-latest.pth")  # weights_only=True inside
    assert ckpt["epoch"] == 1 and "sensor.logits" in ckpt["model"]
    assert (out / "config.yaml").is_file() and any((out / "tb").iterdir())
    rows = log_rows(out)
    assert [r["epoch"] for r in rows] == [0, 1] and all(np.isfinite(r["train_loss"]) for r in rows)
    second = run([*common, "--epochs", "3"], tmp_path)  # auto-resume continues at epoch 2
    assert "starting at epoch 2" in second.stdout + second.stderr
    assert [r["epoch"] for r in log_rows(out)] == [0, 1, 2]


def test_two_process_ddp_matches_one_process_with_twice_the_batch(tiny_data, tmp_path):
    """3 optimiser steps (3 epochs of one step): the per-step losses agree to 1e-5 relative (fp32;
    the residual is the order of the gradient all-reduce sum).

    The decoder predicts every token here so each clip has the same number of tokens in the loss: with
    running-cell decoder masks the count varies per clip, and DDP's mean of per-rank means then differs
    from the one-process mean by design (as in VideoMAEv2)."""
    common = [*TINY, "--data_path", str(tiny_data / "train.csv"), "--data_root", str(tiny_data), "--epochs", "3",
              "--warmup_epochs", "0", "--lr", "0.05", "--precision", "fp32", "--no_auto_resume",
              "--decoder_mask_type", "none"]
    # 8 clips: 1 process x batch 8 = 2 processes x batch 4 = one step per epoch
    run([*common, "--batch_size", "8", "--output_dir", str(tmp_path / "one")], tmp_path)
    run([*common, "--batch_size", "4", "--output_dir", str(tmp_path / "two")], tmp_path, nproc=2)
    one = [r["train_loss"] for r in log_rows(tmp_path / "one")]
    two = [r["train_loss"] for r in log_rows(tmp_path / "two")]
    assert len(one) == len(two) == 3 and one[0] != one[2]  # the model does learn between steps
    np.testing.assert_allclose(two, one, rtol=1e-5)


@pytest.mark.slow
def test_deepspeed_zero1_bf16_trains_saves_and_resumes(tiny_data, tmp_path):
    pytest.importorskip("deepspeed")
    out = tmp_path / "ds"
    common = [*TINY, "--data_path", str(tiny_data / "train.csv"), "--data_root", str(tiny_data),
              "--output_dir", str(out), "--batch_size", "2", "--lr", "0.05", "--warmup_epochs", "0",
              "--enable_deepspeed", "--zero_stage", "1", "--precision", "bf16"]
    run([*common, "--epochs", "1"], tmp_path)
    assert (out / "checkpoint-latest.pth").is_file()
    second = run([*common, "--epochs", "2"], tmp_path)
    assert "starting at epoch 1" in second.stdout + second.stderr
    rows = log_rows(out)
    assert [r["epoch"] for r in rows] == [0, 1] and all(np.isfinite(r["train_loss"]) for r in rows)


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory):
    videos = shared_videos_dir()
    if videos is None:
        pytest.skip("real test clips not found: set SNAPPIX_TEST_VIDEOS or provide <repo>/../shared/data/videos")
    root = tmp_path_factory.mktemp("real")
    subprocess.run([sys.executable, str(REPO / "preprocess_data.py"), str(videos), str(root / "videos"),
                    "--input_format", ".mp4", "--cores", "2"], check=True, capture_output=True)
    names = sorted(p.name for p in (root / "videos").glob("*.mp4"))
    write_list(root / "pretrain.csv", [(n, 0, -1) for n in names], "pretrain")
    return root


def test_kill_minus_nine_then_resume_on_real_clips(real_clips, tmp_path):
    if not (PATTERNS / "pattern_4.pth").is_file():
        pytest.skip(f"SnapPix pattern files not found in {PATTERNS}")
    args = ["--model", "pretrain_coded_videomae_super_tiny_patch8_112", "--coded_type", "decor_fix",
            "--pattern", str(PATTERNS / "pattern_4.pth"), "--input_size", "64", "--num_frames", "16",
            "--sampling_rate", "4", "--decoder_depth", "1", "--num_workers", "1", "--no_progress",
            "--device", "cpu", "--batch_size", "2", "--epochs", "4", "--warmup_epochs", "1", "--lr", "0.1",
            "--precision", "fp32", "--data_path", str(real_clips / "pretrain.csv"),
            "--data_root", str(real_clips / "videos")]
    run([*args, "--output_dir", str(tmp_path / "full")], tmp_path)
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pretraining.py"), *args, "--output_dir", str(killed)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint-latest.pth").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(killed / "checkpoint-latest.pth")["epoch"]
    for path in killed.glob("checkpoint-*.pth"):  # every file under a checkpoint name is complete
        load_checkpoint(path)
    assert saved < 3
    again = run([*args, "--output_dir", str(killed)], tmp_path)
    assert f"starting at epoch {saved + 1}" in again.stdout + again.stderr
    assert [r["epoch"] for r in log_rows(killed)] == list(range(4))
    full = load_checkpoint(tmp_path / "full" / "checkpoint-latest.pth")["model"]
    resumed = load_checkpoint(killed / "checkpoint-latest.pth")["model"]
    for k in full:  # the resumed run reaches exactly the state of the uninterrupted one
        assert torch.equal(full[k], resumed[k]), k
