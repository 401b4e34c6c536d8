"""The claims tool's reconstruction study (snappix.tools.claims.reconstruction): the floor equals a direct
computation, the ridge decoder is exact where it must be and beats the floor, the per-tile plumbing round-trips,
a rerun resumes finished parts, and (slow) the --fast end-to-end run writes its section next to the others."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snappix.sensor import long_exposure_pattern, short_exposure_pattern
from snappix.tools.claims import STUDIES
from snappix.tools.claims import reconstruction as rec
from snappix.tools.claims.reconstruction_table import ordering, render, verdict
from snappix.tools.claims.report import read_sections, write_section


def _clips(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 16, size, size, generator=torch.Generator().manual_seed(seed))


def test_registered_and_clips_are_a_function_of_the_seed():
    assert STUDIES["reconstruction"] == "snappix.tools.claims.reconstruction"
    a = rec.synthetic_clips(0, 3, 2, 32)
    assert a.shape == (2, 1, 16, 32, 32) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(rec.synthetic_clips(0, 4, 1, 32), a[1:])      # clip i does not depend on first
    assert not torch.equal(rec.synthetic_clips(1, 3, 2, 32), a)
    with pytest.raises(ValueError, match="multiple of 8"):
        rec.synthetic_clips(0, 0, 1, 36)


def test_floor_is_the_per_position_mean_and_its_psnr_a_direct_computation():
    train, test = _clips(5), _clips(3, seed=1)
    pred = rec.mean_predictor(train, test)
    mean = train.numpy().mean(axis=0)
    np.testing.assert_allclose(pred.numpy(), np.broadcast_to(mean, test.shape), atol=1e-6)
    direct = np.mean([10 * np.log10(1 / np.mean((mean - c) ** 2)) for c in test.numpy().astype(np.float64)])
    assert rec.psnr(pred, test) == pytest.approx(direct, abs=1e-4)
    with pytest.raises(ValueError):
        rec.mean_predictor(train, _clips(1, size=24))


def test_tile_features_and_targets_round_trip_through_decode():
    clips = _clips(2, size=24)
    y = rec.tile_targets(clips)
    assert y.shape == (2 * 9, 16 * 64)
    # an identity-like decoder on the targets themselves: fold(unfold(x)) == x
    cols = y.float().reshape(2, 9, -1).permute(0, 2, 1)
    back = torch.nn.functional.fold(cols, (24, 24), 8, stride=8).unsqueeze(1)
    torch.testing.assert_close(back, clips)
    x = rec.tile_features(clips[:, :, 0], border=4)
    assert x.shape == (18, 16 * 16 + 1) and torch.all(x[:, -1] == 1)
    assert rec.tile_features(clips[:, :, 0], border=0).shape == (18, 65)


def test_ridge_decoder_is_exact_for_static_clips_under_long_exposure():
    # a static clip: the long-exposure coded image is the frame itself, so the per-tile decoder is exact
    frames = torch.rand(6, 1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    clips = frames.expand(6, 1, 16, 16, 16).contiguous()
    coded = rec.coded_image(long_exposure_pattern(), clips)
    torch.testing.assert_close(coded, frames[:, :, 0])
    w = rec.fit_ridge(rec.tile_features(coded, 0), rec.tile_targets(clips), ridge=0.0)
    assert rec.psnr(rec.decode(w, coded, 0), clips) > 60
    with pytest.raises(ValueError):
        rec.fit_ridge(torch.ones(3, 2, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))


def test_decoder_on_synthetic_clips_beats_the_floor_and_short_is_worse_than_pattern_4():
    train = rec.synthetic_clips(0, 0, 24, 32)
    test = rec.synthetic_clips(0, 24, 8, 32)
    s = rec.Settings(num_train=24, num_test=8, size=32)
    floor = rec.psnr(rec.mean_predictor(train, test), test)
    p4 = rec.evaluate_pattern(rec.fixed_pattern("pattern_4"), train, test, s)
    short = rec.evaluate_pattern(short_exposure_pattern(), train, test, s)
    assert p4["tile"]["psnr"] > floor + 2 and p4["tile"]["psnr"] > short["tile"]["psnr"]
    assert len(p4["tile"]["clip_psnr"]) == 8
    assert np.mean(p4["tile"]["clip_psnr"]) == pytest.approx(p4["tile"]["psnr"], abs=1e-3)


def _fake_result() -> dict:
    rows = {n: {d: {"psnr": p, "clip_psnr": [p, p + 0.1], "ssim": None, "train_psnr": p + 1} for d in rec.DECODERS}
            | {"duty_cycle": 0.5, "ssim_library": "n/a"}
            for n, p in zip(rec.PATTERNS, (20.0, 21.0, 18.0, 17.5, 16.0, 15.0))}
    return {"settings": dict(rec.Settings().__dict__), "seed": 0, "floor": {"psnr": 14.0, "ssim": None},
            "rows": rows, "labels": dict(rec.PATTERNS), "decoders": dict(rec.DECODERS), "real_windows": None,
            "learned": {"duty_cycle": 0.15}, "parts_seconds": 1.0}


def test_render_orders_patterns_and_states_the_floor_margin():
    result = _fake_result()
    assert ordering(result)[:2] == ["pattern_4", "decor_fix_learned"]
    lines = verdict(result)
    assert "+7.00 dB" in lines[0] and "**yes**" in lines[0] and "**matches**" in lines[-1]
    result["rows"]["short"]["tile+border"]["psnr"] = 30.0
    assert "**does not match**" in verdict(result)[-1]
    body = render(result, "- header")
    assert body.startswith("## 2. Reconstruction by pattern") and "floor: per-position mean" in body
    assert "arxiv" not in body.lower() or "2504.04535" in body


def test_rerun_resumes_finished_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(rec.Settings, "of", classmethod(lambda cls, fast: cls(
        num_train=16, num_test=4, size=24, steps=5, max_flips=2)))
    logs: list[str] = []
    first = rec.run_study(tmp_path, None, fast=True, log=logs.append)
    parts = sorted(p.name for p in (tmp_path / "reconstruction" / "fast" / "seed0" / "parts").glob("*.json"))
    assert parts == sorted(["floor.json", "learn_decor_fix.json"] + [f"recon_{n}.json" for n in rec.PATTERNS])
    assert not any("reused" in m for m in logs)
    logs.clear()
    calls = []
    monkeypatch.setattr(rec, "evaluate_pattern", lambda *a, **k: calls.append(1) or {})
    second = rec.run_study(tmp_path, None, fast=True, log=logs.append)
    assert calls == [] and sum("reused" in m for m in logs) == len(parts)
    assert json.dumps(second["rows"], sort_keys=True) == json.dumps(first["rows"], sort_keys=True)


@pytest.mark.slow
def test_fast_run_writes_its_section_and_keeps_the_others(tmp_path, capsys):
    from snappix.tools.claims.cli import main

    md = tmp_path / "doc.md"
    write_section(md, "generalisation", "study 4 stays\n", order=list(STUDIES))
    assert main(["--study", "reconstruction", "--fast", "--work_dir", str(tmp_path / "w"),
                 "--out_md", str(md), "--videos", str(tmp_path / "none")]) == 0
    sections = read_sections(md.read_text())
    assert sections["generalisation"] == "study 4 stays\n"
    body = sections["reconstruction"]
    assert "## 2. Reconstruction by pattern" in body and "- wall time:" in body and "- seed(s): 0" in body
    assert md.read_text().index("claims:reconstruction:begin") < md.read_text().index("claims:generalisation:begin")
    assert "out of the mean-predictor regime by at least 3 dB: **yes**" in body
    assert "Reconstruction by pattern" in capsys.readouterr().out


def test_ssim_uses_a_library_or_says_not_available():
    a = _clips(2)
    value, lib = rec.ssim(a, a)
    try:
        import torchmetrics  # noqa: F401
        has = True
    except ImportError:
        try:
            import skimage  # noqa: F401
            has = True
        except ImportError:
            has = False
    if not has:
        assert (value, lib) == (None, "n/a")
        return
    assert lib in ("torchmetrics", "skimage") and value == pytest.approx(1.0, abs=1e-5)
    assert rec.ssim((a * 0.5).clamp(0, 1), a)[0] < 0.95
