"""Saccade-VSSL evaluation (issue 18, part D): recall@k against brute force, deterministic retrieval features,
the --val_split carve, the linear probe's frozen backbone and BatchNorm, loading a pretraining checkpoint's
``backbone.`` keys, and the retrieval / finetune entry points end to end on tiny synthetic clips."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import timm
import torch

import snappix.models  # noqa: F401
from conftest import REPO
from snappix.data.datasets import VideoClsDataset
from snappix.data.lists import read_list
from snappix.data.splits import carve_validation, stratified_split
from snappix.data.synthetic import make_dataset
from snappix.engine.retrieval import extract_video_features, nearest_neighbours, recall_at_k
from snappix.methods.pretrained import load_pretrained
from snappix.methods.retrieval import Embedder, load_projection
from snappix.models.probe import freeze_for_linear_probe
from snappix.objectives.saccade import SaccadeSSLModel

sys.path.insert(0, str(REPO))
import run_finetuning  # noqa: E402

TINY = ["--model", "saccade_r3d", "--in_chans", "3", "--width", "4", "--num_frames", "4", "--sampling_rate", "1",
        "--input_size", "32", "--short_side_size", "36", "--batch_size", "4", "--num_workers", "0", "--device", "cpu",
        "--no_progress", "--precision", "fp32", "--seed", "3"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("saccade_eval")
    make_dataset(str(root), num_videos=24, num_frames=12, height=48, width=64, val_fraction=0.25)
    return root


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = SaccadeSSLModel(timm.create_model("saccade_r3d", width=4, in_chans=3), proj_dim=16)
    path = tmp_path_factory.mktemp("ckpt") / "ssl.pth"
    torch.save({"model": model.state_dict(), "objective": {"nce.memory": torch.zeros(3, 32)}, "epoch": 0}, path)
    return path, model


# ------------------------------------------------------------------------------------------------- recall@k
def brute_recall(q, ql, g, gl, k):
    hits = 0
    for i in range(len(q)):
        sims = [float(np.dot(q[i], g[j])) for j in range(len(g))]
        order = sorted(range(len(g)), key=lambda j: (-sims[j], j))[:k]
        hits += any(gl[j] == ql[i] for j in order)
    return 100.0 * hits / len(q)


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_recall_at_k_matches_brute_force(search):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    g = rng.normal(size=(60, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    ql, gl = rng.integers(0, 6, 37), rng.integers(0, 6, 60)
    ks = (1, 5, 10, 20, 50, 100)  # 100 > gallery: the whole gallery counts
    res = recall_at_k(q, ql, g, gl, ks, search=search)
    for k in ks:
        assert res.recall[k] == pytest.approx(brute_recall(q, ql, g, gl, k)), k
    assert res.recall[100] == 100.0 * np.mean([np.isin(lb, gl) for lb in ql])
    assert res.neighbours.shape == (37, 60) and res.hits.shape == (37, 6)
    assert list(res.recall.values()) == sorted(res.recall.values())


def test_recall_hand_checked_and_ties():
    g = np.array([[1, 0], [1, 0], [0, 1]], np.float32)  # rows 0 and 1 tie: the lower row comes first
    q = np.array([[1, 0], [0, 1]], np.float32)
    res = recall_at_k(q, [1, 0], g, [0, 1, 0], ks=(1, 2))
    # query 0 (label 1): neighbours 0 (label 0), 1 (label 1) -> a hit at 2 only; query 1: row 2 (label 0) at 1
    assert res.neighbours.tolist() == [[0, 1], [2, 0]] and res.recall == {1: 50.0, 2: 100.0}
    idx, sims = nearest_neighbours(q, g, 1)
    assert idx.ravel().tolist() == [0, 2] and sims.ravel().tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="labels"):
        recall_at_k(q, [0], g, [0, 1, 0])
    with pytest.raises(ValueError, match="same D"):
        nearest_neighbours(q, np.zeros((3, 4), np.float32), 1)


# -------------------------------------------------------------------------------------- retrieval features
def test_retrieval_features_are_deterministic_and_cover_every_video(clips, ssl_checkpoint):
    path, _ = ssl_checkpoint
    backbone = timm.create_model("saccade_r3d", width=4, in_chans=3)
    load_pretrained(backbone, str(path), verbose=False)
    model = Embedder(backbone, load_projection(str(path)))
    model.train()  # extraction must switch to eval mode itself (BatchNorm running statistics, no dropout)
    ds = VideoClsDataset(str(clips / "val.csv"), str(clips), mode="test", num_frames=4, sampling_rate=1,
                         input_size=32, short_side_size=36, test_num_segment=3, test_num_crop=1, gray=None)
    feats = []
    for batch_size in (4, 4, 5):
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
        feats.append(extract_video_features(model, loader, "cpu", "fp32"))
    a, b, c = feats
    assert a.index.tolist() == list(range(8)) and a.num_views.tolist() == [3] * 8 and not a.unreadable
    assert a.features.shape == (8, 16) and np.allclose(np.linalg.norm(a.features, axis=1), 1, atol=1e-5)
    assert np.array_equal(a.features, b.features)  # two extractions: identical bits
    assert np.allclose(a.features, c.features, atol=1e-5)  # another batch size: the same up to rounding
    assert model.training  # mode restored


# ----------------------------------------------------------------------------------------------- val split
def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = [0] * 20 + [1] * 10 + [2] * 3 + [3]
    tr, va = stratified_split(labels, 0.1, seed=7)
    tr2, va2 = stratified_split(labels, 0.1, seed=7)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not set(tr) & set(va) and sorted([*tr, *va]) == list(range(34))
    y = np.asarray(labels)
    assert [int((y[va] == c).sum()) for c in range(4)] == [2, 1, 1, 0]  # round(n/10), >= 1, single row kept
    assert not np.array_equal(stratified_split(labels, 0.1, seed=8)[1], va)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(labels, 1.0)


def test_carve_validation_writes_the_split(clips, tmp_path):
    train, val = carve_validation(str(clips / "train.csv"), 0.5, 0, str(tmp_path))
    again = carve_validation(str(clips / "train.csv"), 0.5, 0, str(tmp_path / "b"))
    rows = lambda p: open(p).read().splitlines()  # noqa: E731
    assert rows(train) == rows(again[0]) and rows(val) == rows(again[1])
    original = rows(clips / "train.csv")
    assert sorted(rows(train) + rows(val)) == sorted(original) and not set(rows(train)) & set(rows(val))
    assert {e.label for e in read_list(val, "cls")} == set(range(8))  # one of the two clips of each class


# ---------------------------------------------------------------------------------------------- linear probe
def _step(model, video, labels):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    model.train()
    torch.nn.functional.cross_entropy(model(video), labels).backward()
    opt.step()


@pytest.mark.parametrize("bn_train", [False, True])
def test_linear_probe_freezes_backbone_and_batchnorm(bn_train):
    torch.manual_seed(0)
    model = timm.create_model("saccade_r3d", num_classes=5, width=4, in_chans=3, dropout=0.7)
    trainable = freeze_for_linear_probe(model, bn_train=bn_train)
    assert trainable == ["head.weight", "head.bias"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, torch.rand(4, 3, 4, 32, 32) * 3, torch.tensor([0, 1, 2, 3]))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    stats = {k for k in changed if "running_" in k or "num_batches" in k}
    assert {"head.weight", "head.bias"} <= changed
    assert not changed - {"head.weight", "head.bias"} - stats  # no backbone weight moved
    assert bool(stats) == bn_train  # BatchNorm statistics only with --probe_bn_train
    assert model.head_drop.training and model.training  # the head's dropout still trains


# ------------------------------------------------------------------------------------------------ loading
def test_pretraining_checkpoint_backbone_prefix_loads(ssl_checkpoint):
    path, ssl = ssl_checkpoint
    clf = timm.create_model("saccade_r3d", num_classes=7, width=4, in_chans=3)
    report = load_pretrained(clf, str(path), min_loaded=1.0, verbose=False)
    assert report.missing == ["head.weight", "head.bias"] and not report.unexpected and not report.mismatched
    assert {k.split(".")[0] for k in report.dropped} >= {"projection", "pixpro"}
    for k, v in ssl.backbone.state_dict().items():
        assert torch.equal(clf.state_dict()[k], v), k
    proj = load_projection(str(path))
    assert torch.equal(proj.linear.weight, ssl.projection.linear.weight)


# ----------------------------------------------------------------------------------------------- end to end
def test_retrieval_entry_point(clips, ssl_checkpoint, tmp_path):
    path, _ = ssl_checkpoint
    out = tmp_path / "ret"
    result = run_finetuning.main([*TINY, "--task", "retrieval", "--data_path", str(clips / "train.csv"),
                                  "--test_path", str(clips / "val.csv"), "--data_root", str(clips),
                                  "--finetune", str(path), "--retrieval_clips", "2", "--output_dir", str(out)])
    summary = json.loads((out / "retrieval.json").read_text())
    assert summary == json.loads(json.dumps(result["retrieval"]))
    assert summary["feature"] == "projection" and summary["feature_dim"] == 16
    assert list(summary["recall"]) == ["1", "5", "10", "20", "50"] and summary["recall"]["20"] == 100.0  # k >= gallery size
    assert summary["gallery"]["with_feature"] == 16 and summary["queries"]["with_feature"] == 8
    assert "| R@1 |" in (out / "retrieval.md").read_text()
    assert len((out / "retrieval_neighbours.csv").read_text().splitlines()) == 9


def test_linear_probe_with_val_split_reports_last_and_selected(clips, ssl_checkpoint, tmp_path):
    path, _ = ssl_checkpoint
    out = tmp_path / "lin"
    history = run_finetuning.main([*TINY, "--data_path", str(clips / "train.csv"), "--test_path",
                                   str(clips / "val.csv"), "--data_root", str(clips), "--nb_classes", "8",
                                   "--finetune", str(path), "--finetune_min_loaded", "1", "--linear_probe",
                                   "--val_split", "0.5", "--epochs", "2", "--opt", "sgd", "--lr", "0.1",
                                   "--lr_scale", "none", "--lr_sched", "multistep", "--lr_decay_epochs", "1",
                                   "--warmup_epochs", "0", "--layer_decay", "1", "--mixup", "0", "--cutmix", "0",
                                   "--smoothing", "0", "--aa", "none", "--reprob", "0", "--head_drop_rate", "0.7",
                                   "--test_num_segment", "2", "--test_num_crop", "1", "--output_dir", str(out)])
    val_rows = (out / "val_split" / "val.csv").read_text().splitlines()
    test_rows = (clips / "val.csv").read_text().splitlines()
    assert len(val_rows) == 8 and not set(val_rows) & set(test_rows)
    assert (out / "test_last" / "multiview_summary.json").is_file() and (out / "test" / "multiview_summary.json").is_file()
    selection = json.loads((out / "selection.json").read_text())
    assert selection["last"]["epoch"] == 1 and selection["selected"]["epoch"] in (0, 1)
    assert selection["last"]["test"]["num_videos"] == 8
    assert history["model"].head_drop.p == 0.7
    # the frozen backbone is exactly the pretrained one, BatchNorm statistics included
    ckpt = torch.load(out / "checkpoint-latest.pth", weights_only=True)["model"]
    pre = torch.load(path, weights_only=True)["model"]
    for k, v in ckpt.items():
        if not k.startswith("head."):
            assert torch.equal(v, pre["backbone." + k]), k
