"""The data doctor on the real clips plus every bad file kind, and ``--check_data`` in the entry points.

(Not counted in the summary line: the bad inputs are counted once, in test_bad_inputs.py.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import REPO, shared_videos_dir
from snappix.data.lists import write_list
from snappix.tools.check_data import DataCheckError, check_lists_for_training, main

from .conftest import NUM_FRAMES, UNREADABLE, USABLE

sys.path.insert(0, str(REPO))  # run_pretraining


def test_check_data_classifies_real_clips_and_every_bad_file(bad_root, tmp_path, capsys):
    real = shared_videos_dir()
    if real is None:
        pytest.skip("real test clips not found: set SNAPPIX_TEST_VIDEOS or provide <repo>/../shared/data/videos")
    rows = [(str(p), 0) for p in sorted(real.iterdir()) if p.is_file()]
    rows += [(str(bad_root / name), 1) for name in [*USABLE, *UNREADABLE]]
    lst = tmp_path / "all.csv"
    write_list(lst, rows, "cls")
    with lst.open("a") as f:
        f.write("broken row without label\n")
    prefix = tmp_path / "report" / "all"
    code = main(["--data_path", str(lst), "--format", "cls", "--deep", "--num_frames", str(NUM_FRAMES),
                 "--workers", "2", "--out", str(prefix), "--no_progress"])
    summary = capsys.readouterr().out
    assert code == 1 and re.search(r"[0-9.]+ files/s \(deep\)", summary), summary
    clean = [line.rsplit(" ", 1)[0] for line in Path(f"{prefix}.clean").read_text().splitlines()]
    assert clean == [r for r, _ in rows if Path(r).name in USABLE or Path(r).parent == real]
    bad = dict(line.split("\t") for line in Path(f"{prefix}.bad.tsv").read_text().splitlines())
    for name, kinds in UNREADABLE.items():
        assert bad.pop(str(bad_root / name)).split(":")[0] in kinds, name
    (row, reason), = bad.items()
    assert row == "broken row without label" and reason.startswith("malformed:") and f"{lst}:{len(rows) + 1}" in reason
    n_real = len(rows) - len(USABLE) - len(UNREADABLE)
    assert f"{len(rows) + 1} rows" in summary and f"bad {len(UNREADABLE) + 1}" in summary
    assert f"ok {n_real + len(USABLE)} (short 2)" in summary


def test_check_data_flag_stops_a_run_before_training(bad_root, tmp_path):
    import run_pretraining

    lst = tmp_path / "pretrain list.csv"
    write_list(lst, [("good.mp4", 0, -1), ("truncated.mp4", 0, -1), ("vfr.mp4", 0, -1)], "pretrain")
    out = tmp_path / "out dir"
    argv = ["--model", "pretrain_coded_videomae_super_tiny_patch8_112", "--coded_type", "naive_learned",
            "--input_size", "32", "--num_frames", "4", "--sampling_rate", "1", "--decoder_depth", "1",
            "--num_workers", "0", "--no_progress", "--device", "cpu", "--batch_size", "1", "--epochs", "1",
            "--precision", "fp32", "--warmup_epochs", "0", "--data_path", str(lst), "--data_root", str(bad_root),
            "--output_dir", str(out),
            "--check_data"]
    with pytest.raises(DataCheckError) as err:
        run_pretraining.main(argv)
    msg = str(err.value)
    report = out / "data_check" / "pretrain list.csv"
    assert f"1 bad rows in {lst}" in msg and f"{report}.bad.tsv" in msg and str(bad_root / "truncated.mp4") in msg
    assert f"{report}.clean" in msg and not list(out.glob("checkpoint-*"))
    assert Path(f"{report}.clean").read_text().splitlines() == ["good.mp4 0 -1", "vfr.mp4 0 -1"]
    assert sorted(p.name for p in lst.parent.iterdir() if p.is_file()) == ["pretrain list.csv"]  # nothing beside it

    # the checked list trains
    history = run_pretraining.main([*argv[:-7], "--data_path", f"{report}.clean", "--data_root", str(bad_root),
                                    "--output_dir", str(out), "--check_data"])
    assert list(history["train"]) == [0] and (out / "checkpoint-latest.pth").is_file()


def test_check_lists_for_training_runs_on_rank_zero_only(bad_root, tmp_path, monkeypatch):
    lst = tmp_path / "train.csv"
    write_list(lst, [("truncated.mp4", 0)], "cls")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert check_lists_for_training([str(lst)], "cls", str(bad_root), str(tmp_path / "out"), progress=False) == []
    assert not (tmp_path / "out").exists()
