"""What a run records about itself survives later commands (issue 15, items 4 and 8).

* ``config.yaml`` is written once per training run: a resumed launch appends a note naming the changed
  flags; ``--eval`` (even a failing one) writes ``eval_config.yaml`` and leaves ``config.yaml`` alone;
  path flags are stored absolute, so ``--config out/config.yaml`` works from any folder.
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from conftest import REPO
from snappix.engine import args as A

pytestmark = pytest.mark.fault
sys.path.insert(0, str(REPO))  # run_finetuning

MODEL = ["--model", "video_vit_super_tiny_patch8_112", "--input_size", "32", "--num_frames", "4",
         "--device", "cpu", "--num_workers", "0", "--no_progress", "--nb_classes", "2"]


def test_eval_and_failed_eval_leave_the_training_config_alone(tmp_path):
    import run_finetuning

    (tmp_path / "train.csv").write_text("a.mp4 0\nb.mp4 1\n")
    out = tmp_path / "out"
    out.mkdir()
    train_args = run_finetuning.build_parser().parse_args([*MODEL, "--data_path", str(tmp_path / "train.csv"),
                                                           "--output_dir", str(out), "--epochs", "30"])
    A.save_config(train_args, str(out))
    before = (out / "config.yaml").read_bytes()
    with pytest.raises(FileNotFoundError, match="--eval: no checkpoint"):  # a failed --eval
        run_finetuning.main([*MODEL, "--data_path", str(tmp_path / "train.csv"), "--output_dir", str(out),
                             "--eval", "--epochs", "5"])
    assert (out / "config.yaml").read_bytes() == before
    evaluated = yaml.safe_load((out / "eval_config.yaml").read_text())
    assert evaluated["eval"] is True and evaluated["epochs"] == 5


def test_resume_appends_a_note_and_paths_are_absolute(tmp_path, monkeypatch):
    import run_finetuning

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "lists").mkdir(parents=True)
    elsewhere.mkdir()
    (work / "lists" / "train.csv").write_text("a.mp4 0\n")
    monkeypatch.chdir(work)
    parser = run_finetuning.build_parser()
    first = parser.parse_args([*MODEL, "--data_path", "lists/train.csv", "--output_dir", "out", "--epochs", "30"])
    path = A.save_config(first, "out")
    original = (work / "out" / "config.yaml").read_text()
    (work / "out" / "checkpoint-latest.pth").write_bytes(b"x")  # the run has a checkpoint: a relaunch resumes
    again = parser.parse_args([*MODEL, "--data_path", "lists/train.csv", "--output_dir", "out", "--epochs", "40"])
    A.save_config(again, "out")
    text = (work / "out" / "config.yaml").read_text()
    assert text.startswith(original)
    note = text[len(original):].strip().splitlines()
    assert len(note) == 1 and note[0].startswith("# ") and "epochs: 30 -> 40" in note[0]

    monkeypatch.chdir(elsewhere)  # --config from another folder
    back = A.parse_args(run_finetuning.build_parser(), ["--config", str(work / "out" / "config.yaml")])
    assert back.data_path == str(work / "lists" / "train.csv") and os.path.isfile(back.data_path)
    assert back.output_dir == str(work / "out") and back.data_root == str(work) and back.epochs == 30
    assert path == os.path.join("out", "config.yaml")


def test_run_without_output_dir_saves_into_a_printed_default_folder(bad_root, tmp_path, monkeypatch, capsys):
    """Item 8: no --output_dir used to save nothing (no checkpoint, no log) and exit 0."""
    import run_finetuning

    (tmp_path / "train.csv").write_text("good.mp4 0\nodd_113x75.mp4 1\n")
    monkeypatch.chdir(tmp_path)
    run_finetuning.main([*MODEL, "--data_path", str(tmp_path / "train.csv"), "--data_root", str(bad_root),
                         "--epochs", "1", "--batch_size", "2", "--warmup_epochs", "0", "--precision", "fp32",
                         "--no_test_best", "--aa", "none", "--reprob", "0", "--mixup", "0", "--cutmix", "0"])
    runs = list((tmp_path / "outputs").glob("finetune-*"))
    assert len(runs) == 1, runs
    assert (runs[0] / "checkpoint-latest.pth").is_file() and (runs[0] / "log.txt").is_file()
    assert (runs[0] / "config.yaml").is_file()
    assert f"no --output_dir given: writing checkpoints, log.txt and config.yaml to {runs[0]}" in capsys.readouterr().out
