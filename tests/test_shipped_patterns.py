"""SnapPix's released exposure patterns shipped inside the package as plain .npy (snappix/sensor/patterns_data)."""
from __future__ import annotations

import pickle
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from snappix.sensor import (SHIPPED_PATTERN_DIR, SHIPPED_PATTERNS, PatternFileError, build_sensor, load_pattern,
                            load_shipped_pattern, pattern_stats)

REPO = Path(__file__).resolve().parents[1]
RELEASED_DIR = REPO.parent / "shared" / "data" / "snappix_patterns"
needs_released = pytest.mark.skipif(not (RELEASED_DIR / "pattern_4.pth").is_file(),
                                    reason=f"SnapPix pattern files not found in {RELEASED_DIR}")


def test_shipped_files_are_plain_binary_npy():
    for name in SHIPPED_PATTERNS:
        path = SHIPPED_PATTERN_DIR / f"{name}.npy"
        array = np.load(path, allow_pickle=False)  # raises if the file needed pickle
        assert array.shape == (1, 16, 8, 8) and array.dtype == np.uint8
        assert set(np.unique(array).tolist()) <= {0, 1}
    assert (SHIPPED_PATTERN_DIR / "README.md").is_file()
    readme = (SHIPPED_PATTERN_DIR / "README.md").read_text()
    assert "horizon-research/SnapPix" in readme and "MIT" in readme


def test_shipped_pattern_4_numbers():
    p4 = load_shipped_pattern("pattern_4")
    stats = pattern_stats(p4)
    assert p4.shape == (1, 16, 8, 8) and p4.dtype == torch.float32
    assert stats["ones"] == 116 and stats["exposures_per_pixel"] == {"min": 1, "mean": 1.8125, "max": 5}
    assert stats["ones_per_slot"] == [11, 6, 7, 5, 7, 7, 7, 9, 5, 9, 8, 7, 8, 5, 7, 8]
    assert pattern_stats(load_shipped_pattern("pattern_init"))["ones"] == 517
    assert torch.all(load_shipped_pattern("pattern_init_sparse.pth").sum(dim=1) == 1)
    with pytest.raises(PatternFileError, match="pattern_4"):
        load_shipped_pattern("pattern_5")


@needs_released
@pytest.mark.parametrize("name", SHIPPED_PATTERNS)
def test_shipped_equal_released(name):
    released = torch.load(RELEASED_DIR / f"{name}.pth", map_location="cpu", weights_only=False)  # trusted test data
    assert torch.equal(load_shipped_pattern(name), torch.as_tensor(np.asarray(released), dtype=torch.float32))
    assert torch.equal(load_shipped_pattern(name), load_pattern(RELEASED_DIR / f"{name}.pth"))


def test_loading_shipped_patterns_uses_no_pickle(monkeypatch):
    monkeypatch.delenv("SNAPPIX_PATTERN_DIR", raising=False)
    with mock.patch.object(pickle, "load", side_effect=AssertionError("pickle.load used")), \
            mock.patch.object(pickle, "loads", side_effect=AssertionError("pickle.loads used")), \
            mock.patch.object(pickle, "Unpickler", side_effect=AssertionError("pickle.Unpickler used")), \
            mock.patch.object(torch, "load", side_effect=AssertionError("torch.load used")):
        for name in SHIPPED_PATTERNS:
            load_shipped_pattern(name)
        build_sensor("decor_fix")


def test_decor_fix_without_a_pattern_flag_uses_pattern_4(monkeypatch):
    monkeypatch.delenv("SNAPPIX_PATTERN_DIR", raising=False)
    p4 = load_shipped_pattern("pattern_4")
    fix, learn = build_sensor("decor_fix"), build_sensor("decor_learn")
    assert torch.equal(fix.get_pattern(), p4) and torch.equal(learn.get_pattern(), p4)
    assert not fix.logits.requires_grad and learn.logits.requires_grad
    assert "pattern_4" in fix.source
    # the shipped folder also works as --pattern_dir (the .npy stands in for the .pth name) and as --pattern
    assert torch.equal(build_sensor("decor_fix", pattern_dir=SHIPPED_PATTERN_DIR).get_pattern(), p4)
    assert torch.equal(build_sensor("naive", pattern_dir=SHIPPED_PATTERN_DIR).get_pattern(),
                       load_shipped_pattern("pattern_init"))
    assert torch.equal(build_sensor("decor_fix", pattern_path=SHIPPED_PATTERN_DIR / "pattern_4.npy").get_pattern(), p4)


def test_npy_pattern_with_objects_is_refused(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PatternFileError, match="refusing"):
        load_pattern(bad)


def test_pattern_data_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["snappix.sensor"]
    assert "patterns_data/*.npy" in globs and "patterns_data/README.md" in globs
