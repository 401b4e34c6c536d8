"""The Saccade-VSSL CPU demo: the script is executable and parses, the report reads retrieval.json files, and
(slow) the demo runs end to end with tiny settings."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from engine_toys import REPO
from snappix.tools import retrieval_report

DEMO = REPO / "scripts" / "demos" / "saccade.sh"
ROWS = ["(a) random init", "(b) instance contrast", "(c) Saccade-VSSL"]


def test_demo_script_is_executable_and_parses():
    assert os.access(DEMO, os.X_OK), f"{DEMO} is not executable"
    subprocess.run(["bash", "-n", str(DEMO)], check=True)
    out = subprocess.run(["bash", str(DEMO), "--bogus"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown argument" in out.stderr


def _summary(r1: float, r5: float, feature: str = "projection") -> dict:
    return {"retrieval": {"recall": {"1": r1, "5": r5}, "feature": feature, "time_s": 12.0,
                          "gallery": {"with_feature": 40}, "queries": {"with_feature": 8}}}


def test_retrieval_report_table_and_margins(tmp_path, capsys):
    for name, (r1, r5) in zip(("a", "c"), ((20.0, 50.0), (35.0, 75.0))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "retrieval.json").write_text(json.dumps(_summary(r1, r5)))
    (tmp_path / "t.tsv").write_text("C\t61\n")
    out = tmp_path / "r.md"
    assert retrieval_report.main(["--run", f"A={tmp_path / 'a'}", "--run", f"C={tmp_path / 'c'}", "--timings",
                                  str(tmp_path / "t.tsv"), "--baseline", "A", "--margin", "10", "--out",
                                  str(out)]) == 0
    text = out.read_text()
    assert "| A | 20.0 | 50.0 | projection | 40 / 8 | none | 12 s |" in text
    assert "| C | 35.0 | 75.0 | projection | 40 / 8 | 61 s | 12 s |" in text
    assert "C: +15.0 recall@1 points over A (at least the 10 points asked)" in text
    with pytest.raises(SystemExit):
        retrieval_report.main(["--run", f"B={tmp_path / 'missing'}"])
    assert "retrieval.json does not exist" in capsys.readouterr().err


def test_flip_flag_reaches_the_training_clips(tmp_path):
    """--flip false (for direction-of-motion clips, where a flip turns E into W) switches the training clips' flip
    off; the default keeps it."""
    import numpy as np

    from run_pretraining import build_parser
    from snappix.data.lists import write_list
    from snappix.data.synthetic import render_clip
    from snappix.data.video_writer import write_video
    from snappix.engine.args import parse_args
    from snappix.methods import saccade as plug

    write_video(str(tmp_path / "c.mp4"), render_clip(0, 20, 48, 64, rng=np.random.default_rng(0)))
    write_list(tmp_path / "p.csv", [("c.mp4", 0, -1)], "pretrain")
    base = ["--task", "saccade", "--model", "r3d", "--data_path", str(tmp_path / "p.csv"), "--data_root", str(tmp_path),
            "--random_fixations", "--num_frames", "4", "--input_size", "32", "--output_dir", str(tmp_path / "o")]
    for extra, want in (([], True), (["--flip", "false"], False)):
        args = parse_args(build_parser(), base + extra)
        plug.check(args)
        train, cluster = plug.build_datasets(args)
        assert train.augment.flip is want and train.augment.train and not cluster.augment.train


@pytest.mark.slow
def test_saccade_demo_fast(tmp_path):
    """The demo end to end with tiny settings (32 clips, 2 epochs): three rows with measured recalls, on the
    generator's shape classes."""
    from snappix.data.synthetic import SHAPES

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(["bash", str(DEMO), "--fast", "--out", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "demo" / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| (")]
    assert [r.split("|")[1].strip() for r in rows] == ROWS
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert 0.0 <= float(cells[1]) <= float(cells[2]) <= 100.0
    assert rows[0].split("|")[4].strip() == "backbone (random init)"
    assert all(r.split("|")[4].strip() == "projection" for r in rows[1:])
    assert "Saccade-VSSL demo" in proc.stdout
    assert any((tmp_path / "demo" / "scan_idx_7").rglob("*.txt"))
    assert (tmp_path / "demo" / "data" / "classes.txt").read_text().split() == list(SHAPES)
    assert "shape" in table and "chance at k = 1: 20 %" in table
