"""The quickstart end to end (tiny settings), its list builder and its results table."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import REPO, SKIP_NO_VIDEOS, shared_videos_dir, synthetic_frames, write_lossless_video
from snappix.data.lists import read_list
from snappix.tools import quickstart_lists
from snappix.tools.results_table import format_table, read_timings, RunRow

ROWS = ("coded ViT (SnapPix)", "short exposure (1 frame)", "long exposure (mean of 16)", "video ViT (16 frames)")


def run_quickstart(out, *extra, cwd=REPO, timeout=900):
    """Run the quickstart from ``cwd``; ``out`` and ``--data`` may be relative to it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    script = os.path.join(REPO, "scripts", "quickstart.sh")
    return subprocess.run(["bash", script, "--fast", "--out", str(out), *extra], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def check_outputs(out, proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (out / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == list(ROWS)
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert cells[3] != "n/a" and 0.0 <= float(cells[3].split()[0]) <= 100.0  # a measured top-1
        assert int(cells[5]) == 64  # tokens per clip at 64 px (coded: 8 x 8 patches of 8; video: 4 x 4 x 4)
        assert float(cells[6]) > 0  # GFLOPs measured
    pixels = {r.split("|")[1].strip(): int(r.split("|")[8].split()[0].replace(",", "")) for r in rows}
    assert pixels["video ViT (16 frames)"] == 16 * pixels["coded ViT (SnapPix)"] == 16 * 64 * 64
    assert "Quickstart results" in proc.stdout  # the table is printed
    for name in ("coded_example.png", "timings.tsv", "decorrelation/pattern_refined.png",
                 "ft_coded/test/multiview_summary.json", "ft_video/checkpoint-best.pth"):
        assert (out / name).is_file(), name
    assert list((out / "pretrain" / "recon").glob("*.png"))
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_quickstart_synthetic_tiny(tmp_path):
    """Every stage runs on the embedded dataset (2 finetuning epochs, 32 clips) and the table is complete."""
    out = tmp_path / "qs out"  # a space in the path on purpose
    check_outputs(out, run_quickstart("qs out", cwd=tmp_path))  # --out relative to where the user stands


@pytest.mark.slow
def test_quickstart_real_videos_tiny(tmp_path):
    """The same pipeline on the real clips (one class per clip, temporal split)."""
    videos = shared_videos_dir()
    if videos is None:
        pytest.skip(SKIP_NO_VIDEOS)
    out = tmp_path / "qs_data"
    os.symlink(videos, tmp_path / "vids")
    proc = run_quickstart("qs_data", "--data", "vids", cwd=tmp_path)  # both relative to the user's folder
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "results.md").is_file()
    assert len(read_list(out / "data" / "train.csv", "cls", str(out / "data"))) >= 2


def test_quickstart_names_a_missing_data_folder_from_the_users_folder(tmp_path):
    proc = run_quickstart("o", "--data", "no_such_dir", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert f"--data {tmp_path}/no_such_dir is not a folder" in proc.stderr


def test_quickstart_lists_class_folders(tmp_path):
    root = tmp_path / "videos"
    for c, name in enumerate(["jump", "run"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            write_lossless_video(root / name / f"v {i}.mp4", synthetic_frames(6, 32, 32, seed=10 * c + i))
    out = tmp_path / "lists"
    assert quickstart_lists.main([str(root), str(out), "--val_fraction", "0.34"]) == 0
    train = read_list(out / "train.csv", "cls", str(out))
    val = read_list(out / "val.csv", "cls", str(out))
    assert (out / "classes.txt").read_text().split() == ["jump", "run"]
    assert sorted(e.label for e in val) == [0, 1] and len(train) == 4
    assert all(os.path.isfile(e.path) for e in train + val)  # relative paths resolve from OUT
    assert all(e.rel_path.startswith("videos/") for e in train + val)  # through OUT/videos, never "../"
    assert quickstart_lists.main([str(root), str(out), "--val_fraction", "0.34"]) == 0  # a rerun reuses the link
    assert [e.rel_path for e in read_list(out / "pretrain.csv", "pretrain")] == [e.rel_path for e in train]


def test_quickstart_lists_flat_folder_is_a_temporal_split(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(2):
        write_lossless_video(root / f"clip{i}.mp4", synthetic_frames(20, 32, 32, seed=i))
    out = tmp_path / "lists"
    assert quickstart_lists.main([str(root), str(out)]) == 0
    assert [e.label for e in read_list(out / "val.csv", "cls")] == [0, 1]
    assert (out / "pretrain_val.csv").is_file()


def test_timings_and_table(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a b\t12\na b\t13\n")
    assert read_timings(str(path)) == {"a b": 13.0}
    path.write_text("oops\n")
    with pytest.raises(ValueError, match="t.tsv:1"):
        read_timings(str(path))
    rows = [RunRow("coded", "m", "decor_fix", "scratch", 90.0, 85.0, "2x3", 196, 0.6, 12544, 10.0),
            RunRow("video", "v", "none", "scratch", None, None, "", 196, 0.7, 200704, None)]
    table = format_table(rows)
    assert "| coded | decor_fix | scratch | 90.0 (2x3) | 85.0 | 196 | 0.600 | 12,544 (16x fewer) | 10 s |" in table
    assert "| video | none | scratch | n/a | n/a | 196 | 0.700 | 200,704 | n/a |" in table


def test_results_table_rebuilds_the_finetuned_model_from_its_config():
    """results_table and run_finetuning.py share one flag -> model mapping (snappix.models.factory)."""
    from snappix.tools.results_table import build_model_from_config

    coded = build_model_from_config({"model": "coded_vit_super_tiny_patch8_112", "coded_type": "long",
                                     "nb_classes": 3, "input_size": 112, "num_frames": 16})
    assert coded.get_classifier().out_features == 3 and coded.sensor is not None
    kc = build_model_from_config({"model": "kcenter_vit_super_tiny_patch8_112", "nb_classes": 4,
                                  "kcenter_hybrid_frames": 0, "kcenter_time_division": 2})
    assert kc.time_division == 2
