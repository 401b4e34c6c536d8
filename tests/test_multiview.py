"""Multi-view testing: merge per list row (equal file names in different folders stay apart), sampler
padding duplicates, missing views, exact video / clip / single-view metrics, the report files, and a
2-process gloo run (torchrun) that gives the same merged predictions as one process.

The 2-process driver is this file's ``__main__``:
    torchrun --standalone --nproc_per_node 2 tests/test_multiview.py --list L --root R --out O
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from snappix.engine import distributed as D
from snappix.engine.multiview import (MissingViewsError, collect_view_scores, format_summary, gather_views,
                                      merge_views, summarize, video_metrics, write_report)

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 6
# 3 videos x 2 segments x 3 crops: the class each view's logits favour, [video][segment][crop]
PATHS = ["a/clip.mp4", "b/clip.mp4", "c/other.mp4"]  # rows 0 and 1: same file name, different folders
LABELS = [0, 1, 5]
VIEW_PREDS = [[[0, 0, 1], [0, 0, 0]],   # video 0: 5 of 6 views right, mean -> class 0 (right)
              [[3, 1, 3], [1, 3, 4]],   # video 1: 2 right, mean -> class 3 (wrong), label ranked 2nd
              [[0, 1, 2], [3, 4, 0]]]   # video 2: 0 right, label 5 ranked last (top-5 miss)


def _view_logits(pred: int) -> np.ndarray:
    """Peak at ``pred``; a small decreasing ramp breaks every tie (lower class ranks higher)."""
    logits = -0.01 * np.arange(NUM_CLASSES)
    logits[pred] += 4.0
    return logits


def _hand_made_records():
    rows = [(v, s, c) for v in range(3) for s in range(2) for c in range(3)]
    logits = np.stack([_view_logits(VIEW_PREDS[v][s][c]) for v, s, c in rows])
    scores = torch.softmax(torch.tensor(logits), dim=1).float().numpy()
    return {"index": np.array([r[0] for r in rows]), "segment": np.array([r[1] for r in rows]),
            "crop": np.array([r[2] for r in rows]), "label": np.array([LABELS[r[0]] for r in rows]),
            "substituted": np.zeros(len(rows), bool), "scores": scores}


def _take(records, order):
    return {k: v[order] for k, v in records.items()}


# ---------------------------------------------------------------------------------------------------
# merge and metrics on hand-made views
# ---------------------------------------------------------------------------------------------------
def test_merge_keys_by_list_row_and_averages_softmax():
    records = _hand_made_records()
    assert len({os.path.basename(p).split(".")[0] for p in PATHS}) == 2  # VideoMAE's id would merge rows 0 and 1
    shuffled = _take(records, np.random.default_rng(0).permutation(18))
    merged = merge_views(shuffled, num_videos=3, views_per_video=(2, 3))
    assert merged.index.tolist() == [0, 1, 2] and merged.labels.tolist() == LABELS
    assert merged.num_views.tolist() == [6, 6, 6]  # equal (segment, crop) of different videos never collapse
    assert merged.duplicates == 0 and merged.missing == []
    expected = records["scores"].astype(np.float64).reshape(3, 6, NUM_CLASSES).mean(1)
    np.testing.assert_allclose(merged.scores, expected, rtol=0, atol=1e-12)
    assert merged.scores.argmax(1).tolist() == [0, 3, 0]
    # views come back sorted by (index, segment, crop) whatever the gathered order
    assert list(zip(merged.views["index"], merged.views["segment"], merged.views["crop"])) == \
        [(v, s, c) for v in range(3) for s in range(2) for c in range(3)]


def test_exact_video_clip_and_single_view_metrics():
    merged = merge_views(_hand_made_records(), 3, (2, 3))
    assert video_metrics(merged.scores, merged.labels) == {"top1": pytest.approx(100 / 3),
                                                           "top5": pytest.approx(200 / 3)}
    summary = summarize(merged)
    assert summary["video_top1"] == pytest.approx(100 / 3) and summary["video_top5"] == pytest.approx(200 / 3)
    assert summary["clip_top1"] == pytest.approx(100 * 7 / 18)  # 5 + 2 + 0 right views of 18
    assert summary["single_view"] == [0, 1]                      # segment (2-1)//2, crop (3-1)//2
    assert summary["single_view_top1"] == pytest.approx(200 / 3)  # views (v, 0, 1) predict 0, 1, 1
    assert (summary["num_videos"], summary["views_per_video"], summary["num_views"]) == (3, 6, 18)
    text = format_summary(summary)
    assert "3 videos x 6 views (2 segments x 3 crops)" in text and "top-1 33.333" in text and "top-5 66.667" in text
    assert video_metrics(np.array([[0.2, 0.5, 0.3]]), np.array([2]), (1, 2, 5)) == {"top1": 0.0, "top2": 100.0,
                                                                                    "top5": 100.0}
    assert merge_views(_hand_made_records(), 3, 6).single_view == (0, 1)  # int views_per_video: grid inferred


def test_sampler_padding_duplicates_are_dropped():
    records = _hand_made_records()
    clean = merge_views(records, 3, (2, 3))
    # DistributedSampler over 18 items and 4 ranks pads 2 items: repeats of the first ones
    padded = _take(records, np.concatenate([np.arange(18), [0, 1]]))
    merged = merge_views(padded, 3, (2, 3))
    assert merged.duplicates == 2 and summarize(merged)["duplicates_dropped"] == 2
    np.testing.assert_array_equal(merged.scores, clean.scores)
    assert merged.num_views.tolist() == [6, 6, 6]


def test_missing_views_raise_or_are_reported():
    records = _hand_made_records()
    keep = np.ones(18, bool)
    keep[1 * 6 + 1 * 3 + 2] = False  # video 1, segment 1, crop 2
    with pytest.raises(MissingViewsError, match=r"1 of 18 views missing") as err:
        merge_views(_take(records, keep), 3, (2, 3))
    assert err.value.missing == [(1, 1, 2)]
    merged = merge_views(_take(records, keep), 3, (2, 3), allow_missing=True)
    assert merged.num_views.tolist() == [6, 5, 6] and merged.missing == [(1, 1, 2)]
    no_video2 = merge_views(_take(records, records["index"] != 2), 3, (2, 3), allow_missing=True)
    assert no_video2.index.tolist() == [0, 1] and len(no_video2.missing) == 6
    assert summarize(no_video2)["num_videos"] == 2 and "not scored" in format_summary(summarize(no_video2))
    with pytest.raises(MissingViewsError):  # a whole video absent is missing too
        merge_views(records, 4, (2, 3))


def test_merge_rejects_inconsistent_records():
    records = _hand_made_records()
    bad = {**records, "label": records["label"].copy()}
    bad["label"][7] = 2  # one view of video 1 with another label
    with pytest.raises(ValueError, match="list row 1 carry different labels"):
        merge_views(bad, 3, (2, 3))
    with pytest.raises(ValueError, match="index outside"):
        merge_views(records, 2, (2, 3))
    with pytest.raises(ValueError, match="crop outside"):
        merge_views(records, 3, (2, 2))
    with pytest.raises(ValueError, match="pass views_per_video"):
        merge_views(records, 3, 4)
    with pytest.raises(ValueError, match="no view records"):
        merge_views(gather_views({k: v[:0] for k, v in records.items()}), 3, (2, 3))


# ---------------------------------------------------------------------------------------------------
# report files
# ---------------------------------------------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_write_report_files_and_content(tmp_path):
    merged = merge_views(_hand_made_records(), 3, (2, 3))
    names = ["run", "jump", "swim", "sit", "stand", "clap"]
    summary = write_report(str(tmp_path), merged, class_names=names, paths=PATHS)
    for f in ("per_class_accuracy.csv", "confusion_matrix.csv", "confusion_matrix.png", "video_predictions.csv",
              "multiview_summary.json", "multiview_summary.txt"):
        assert (tmp_path / f).is_file(), f
    per_class = _read_csv(tmp_path / "per_class_accuracy.csv")
    assert per_class[0] == ["class_id", "class", "support", "correct", "top1"]
    assert per_class[1:] == [["0", "run", "1", "1", "100.0000"], ["1", "jump", "1", "0", "0.0000"],
                             ["2", "swim", "0", "0", ""], ["3", "sit", "0", "0", ""], ["4", "stand", "0", "0", ""],
                             ["5", "clap", "1", "0", "0.0000"]]
    confusion = _read_csv(tmp_path / "confusion_matrix.csv")
    assert confusion[0] == ["true\\pred", *names]
    counts = np.array([[int(x) for x in row[1:]] for row in confusion[1:]])
    expected = np.zeros((6, 6), int)
    expected[0, 0] = expected[1, 3] = expected[5, 0] = 1
    np.testing.assert_array_equal(counts, expected)
    assert [row[0] for row in confusion[1:]] == names
    preds = _read_csv(tmp_path / "video_predictions.csv")
    assert [r[:4] + r[6:] for r in preds[1:]] == [["0", "a/clip.mp4", "0", "0", "1", "6"],
                                                  ["1", "b/clip.mp4", "1", "3", "0", "6"],
                                                  ["2", "c/other.mp4", "5", "0", "0", "6"]]
    saved = json.loads((tmp_path / "multiview_summary.json").read_text())
    assert saved["video_top1"] == pytest.approx(100 / 3) and saved["clip_top1"] == pytest.approx(700 / 18)
    assert summary["files"]["confusion_matrix.png"].endswith("confusion_matrix.png")
    assert "single-view (segment 0, crop 1" in (tmp_path / "multiview_summary.txt").read_text()
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "confusion_matrix.png")
    assert img.ndim == 3 and min(img.shape[:2]) >= 400


def test_confusion_png_for_100_classes(tmp_path):
    rng = np.random.default_rng(0)
    k, n = 100, 300
    labels = np.arange(n) % k
    records = {"index": np.arange(n), "segment": np.zeros(n, int), "crop": np.zeros(n, int), "label": labels,
               "substituted": np.zeros(n, bool), "scores": rng.dirichlet(np.ones(k), n).astype(np.float32)}
    write_report(str(tmp_path), merge_views(records, n, (1, 1)))
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "confusion_matrix.png")
    assert min(img.shape[:2]) >= 1500  # large enough for 100 labelled rows
    assert len(_read_csv(tmp_path / "per_class_accuracy.csv")) == 101


# ---------------------------------------------------------------------------------------------------
# real dataset + toy model: 1 process and 2 processes (gloo) agree
# ---------------------------------------------------------------------------------------------------
TOY_PATHS = ["a/clip.mp4", "b/clip.mp4", "c/clip.mp4", "d/v.mp4", "e/w.mp4"]
TOY_LABELS = [0, 1, 2, 3, 1]
TOY_CLASSES = 4


def _toy_dataset(list_path, root):
    from snappix.data.datasets import VideoClsDataset

    return VideoClsDataset(list_path, root, mode="test", num_frames=4, sampling_rate=2, input_size=16,
                           short_side_size=16, test_num_segment=3, test_num_crop=1, gray="mean")


def _toy_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4 * 16 * 16, TOY_CLASSES))


def _driver(argv):
    """Multi-view test of the toy model over the toy list; rank 0 writes the report and a JSON result."""
    from torch.utils.data import DataLoader, DistributedSampler

    p = argparse.ArgumentParser()
    p.add_argument("--list", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    info = D.init_distributed("cpu")
    dataset = _toy_dataset(args.list, args.root)
    sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=False, drop_last=False)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=0)
    model = D.wrap_ddp(_toy_model(), info)
    local = collect_view_scores(model, loader, info.device, precision="fp32")
    records = gather_views(local)
    merged = merge_views(records, len(dataset.entries), (dataset.test_num_segment, dataset.test_num_crop))
    summary = summarize(merged)
    if info.is_main:
        write_report(os.path.join(args.out, "report"), merged, paths=[e.rel_path for e in dataset.entries])
        result = {"world_size": info.world_size, "local_views": int(len(local["index"])),
                  "gathered_views": int(len(records["index"])), "index": merged.index.tolist(),
                  "labels": merged.labels.tolist(), "scores": merged.scores.tolist(), "summary": summary}
        with open(os.path.join(args.out, "result.json"), "w") as f:
            json.dump(result, f)
    D.cleanup()


@pytest.fixture(scope="module")
def toy_list(tmp_path_factory):
    from conftest import synthetic_frames, write_lossless_video
    from snappix.data.lists import write_list

    root = tmp_path_factory.mktemp("mv")
    for i, rel in enumerate(TOY_PATHS):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_lossless_video(root / rel, synthetic_frames(20 + 4 * i, 24, 32, seed=10 + i))
    write_list(root / "test.csv", list(zip(TOY_PATHS, TOY_LABELS)), "cls")
    return root


TRANSIENT = ("EADDRINUSE", "Address already in use", "address already in use")


def _run_driver(toy_list, out, nproc):
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    launcher = [sys.executable] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [*launcher, __file__, "--list", str(toy_list / "test.csv"), "--root", str(toy_list), "--out", str(out)]
    for attempt in range(2):  # torchrun picks a free port, closes it, then binds it: rarely taken meanwhile
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out, timeout=300)
        if proc.returncode == 0 or not any(m in proc.stdout + proc.stderr for m in TRANSIENT):
            break
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / "result.json").read_text())


def test_collect_in_process_matches_dataset_views(toy_list):
    from torch.utils.data import DataLoader

    dataset = _toy_dataset(str(toy_list / "test.csv"), str(toy_list))
    model = _toy_model()
    model.train()
    records = collect_view_scores(model, DataLoader(dataset, batch_size=4), "cpu", precision="fp32")
    assert model.training  # state restored
    assert records["index"].tolist() == [i for i in range(5) for _ in range(3)]
    assert records["segment"].tolist() == [0, 1, 2] * 5 and records["crop"].tolist() == [0] * 15
    assert records["label"].tolist() == [lab for lab in TOY_LABELS for _ in range(3)]
    np.testing.assert_allclose(records["scores"].sum(1), 1.0, atol=1e-6)
    with torch.no_grad():
        ref = torch.softmax(model(dataset[4]["video"][None]), 1)[0].numpy()
    np.testing.assert_allclose(records["scores"][4], ref, atol=1e-6)  # row 4 = video 1, segment 1


def test_two_process_gloo_merge_equals_one_process(toy_list, tmp_path):
    one = _run_driver(toy_list, tmp_path / "one", 1)
    two = _run_driver(toy_list, tmp_path / "two", 2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["local_views"] == 15 and two["local_views"] == 8  # 15 views over 2 ranks: padded to 16
    assert two["gathered_views"] == 16 and two["summary"]["duplicates_dropped"] == 1
    assert one["summary"]["duplicates_dropped"] == 0
    assert one["index"] == two["index"] == [0, 1, 2, 3, 4] and one["labels"] == two["labels"] == TOY_LABELS
    np.testing.assert_allclose(np.array(two["scores"]), np.array(one["scores"]), rtol=0, atol=1e-6)
    assert np.argmax(one["scores"], 1).tolist() == np.argmax(two["scores"], 1).tolist()
    for key in ("video_top1", "video_top5", "clip_top1", "single_view_top1", "num_views", "num_videos"):
        assert one["summary"][key] == two["summary"][key], key
    rows = [r[:4] for r in _read_csv(tmp_path / "two" / "report" / "video_predictions.csv")]
    assert rows == [r[:4] for r in _read_csv(tmp_path / "one" / "report" / "video_predictions.csv")]
    assert [r[1] for r in rows[1:]] == TOY_PATHS  # a/, b/, c/clip.mp4 stay three videos


if __name__ == "__main__":
    _driver(sys.argv[1:])
