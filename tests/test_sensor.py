"""Coded-exposure sensor layer, pattern zoo, pattern files and noise (snappix.sensor)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from snappix.sensor import (CODED_TYPES, CodedExposure, PamiExposure, PatternFileError, SensorNoise, binarize_ste,
                            build_sensor, load_pattern, pattern_stats, save_pattern, short_slot)

REPO = Path(__file__).resolve().parents[1]
PATTERN_DIR = REPO.parent / "shared" / "data" / "snappix_patterns"
SKIP_NO_PATTERNS = f"SnapPix pattern files not found in {PATTERN_DIR}"
needs_patterns = pytest.mark.skipif(not (PATTERN_DIR / "pattern_4.pth").is_file(), reason=SKIP_NO_PATTERNS)


def hand_code(clip: np.ndarray, pattern: np.ndarray, normalize: str = "exposed") -> np.ndarray:
    """Reference coded image with explicit loops over pixels: clip (T, H, W), pattern (T, s, s) -> (H, W)."""
    t, h, w = clip.shape
    s = pattern.shape[1]
    out = np.zeros((h, w), dtype=np.float64)
    for y in range(h):
        for x in range(w):
            m = pattern[:, y % s, x % s]
            total = sum(float(m[k]) * float(clip[k, y, x]) for k in range(t))
            out[y, x] = total / (max(1.0, float(m.sum())) if normalize == "exposed" else t)
    return out


# ------------------------------------------------------------------------------------------- binarisation
def test_ste_gradient_reaches_logits():
    layer = CodedExposure(num_frames=4, tile_size=2, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 1, 4, 4, 6)
    layer(x).square().sum().backward()
    assert layer.logits.grad is not None
    assert layer.logits.grad.shape == (1, 4, 2, 2)
    assert layer.logits.grad.abs().sum() > 0


def test_ste_is_identity_gradient():
    w = torch.tensor([[[[0.5]], [[-0.2]], [[-0.1]]]], requires_grad=True)  # (1, 3, 1, 1)
    m = binarize_ste(w, time_dim=1)
    g = torch.tensor([[[[1.0]], [[2.0]], [[3.0]]]])
    m.backward(g)
    assert torch.equal(w.grad, g)


def test_frozen_pattern_gets_no_gradient():
    layer = CodedExposure(num_frames=4, tile_size=2, trainable=False)
    x = torch.rand(2, 1, 4, 4, 4, requires_grad=True)
    layer(x).sum().backward()
    assert not layer.logits.requires_grad and layer.logits.grad is None
    assert x.grad is not None  # the clip still gets its gradient


def test_every_pixel_exposed_at_least_once():
    layer = CodedExposure(num_frames=16, tile_size=8)
    with torch.no_grad():
        layer.logits.fill_(-1.0)
        layer.logits[0, 5, 2, 3] = -0.5  # the largest logit of pixel (2, 3)
    p = layer.get_pattern()
    assert torch.all(p.sum(dim=1) >= 1)
    assert p[0, 5, 2, 3] == 1 and p[0, :, 2, 3].sum() == 1
    assert torch.all(p[0, 0].flatten()[torch.arange(64) != 2 * 8 + 3] == 1)  # ties -> first slot
    rnd = CodedExposure(num_frames=16, tile_size=8, generator=torch.Generator().manual_seed(3))
    assert torch.all(rnd.get_pattern().sum(dim=1) >= 1)
    assert 0.4 < rnd.duty_cycle() < 0.65


# ------------------------------------------------------------------------------------------- coding
@pytest.mark.parametrize("normalize", ["exposed", "frames"])
def test_coded_image_matches_hand_computation(normalize):
    rng = np.random.default_rng(0)
    pattern = np.array([[[1, 0], [0, 1]], [[1, 1], [0, 0]], [[0, 0], [0, 1]], [[1, 0], [1, 1]]], dtype=np.float32)
    clip = rng.random((4, 4, 6)).astype(np.float32)
    layer = CodedExposure(num_frames=4, tile_size=2, init_pattern=pattern, trainable=False, normalize=normalize)
    assert torch.equal(layer.get_pattern()[0], torch.from_numpy(pattern))
    out = layer(torch.from_numpy(clip)[None, None])
    assert out.shape == (1, 1, 1, 4, 6)
    np.testing.assert_allclose(out[0, 0, 0].double().numpy(), hand_code(clip, pattern, normalize), rtol=1e-6, atol=1e-7)
    # spot values: pixel (0, 0) exposed in slots 0, 1, 3
    expected = (clip[0, 0, 0] + clip[1, 0, 0] + clip[3, 0, 0]) / (3 if normalize == "exposed" else 4)
    assert out[0, 0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize("t", [8, 16])
def test_shapes_for_sizes_and_frames(size, t):
    x = torch.rand(2, 1, t, size, size)
    for name in ("naive_learned", "naive", "sparse", "long", "short", "global", "pami", "no_norm"):
        sensor = build_sensor(name, num_frames=t, input_size=size)
        y = sensor(x)
        assert y.shape == (2, 1, 1, size, size), name
        assert torch.all(y >= 0) and torch.all(y <= 1 + 1e-6), name
    assert build_sensor("none")(x).shape == x.shape


def test_bad_inputs_raise():
    layer = CodedExposure(num_frames=16, tile_size=8)
    with pytest.raises(ValueError, match="T=16"):
        layer(torch.rand(1, 1, 8, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        layer(torch.rand(1, 1, 16, 20, 16))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        layer(torch.rand(1, 16, 16, 16))
    with pytest.raises(ValueError, match="binary"):
        CodedExposure(num_frames=2, tile_size=1, init_pattern=np.array([[[0.5]], [[1.0]]]))


def test_grey_and_per_channel_patterns():
    x = torch.rand(2, 3, 4, 4, 4)
    grey = CodedExposure(num_frames=4, tile_size=2, generator=torch.Generator().manual_seed(1))
    y = grey(x)
    assert y.shape == (2, 3, 1, 4, 4)
    for c in range(3):  # the grey pattern codes each channel like a 1-channel clip
        torch.testing.assert_close(y[:, c:c + 1], grey(x[:, c:c + 1]))
    pattern = (torch.rand(3, 4, 2, 2, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    pattern[:, 0] = 1.0
    per = CodedExposure(num_frames=4, tile_size=2, pattern_channels=3, init_pattern=pattern, trainable=False)
    y = per(x)
    for c in range(3):
        ref = hand_code(x[0, c].numpy(), pattern[c].numpy())
        np.testing.assert_allclose(y[0, c, 0].double().numpy(), ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="channels"):
        per(torch.rand(1, 1, 4, 4, 4))


def test_long_short_and_no_norm():
    x = torch.rand(2, 1, 16, 16, 16)
    torch.testing.assert_close(build_sensor("long")(x), x.mean(dim=2, keepdim=True))
    assert short_slot(16) == 7
    torch.testing.assert_close(build_sensor("short")(x), x[:, :, 7:8])
    naive = build_sensor("naive", seed=4)
    no_norm = build_sensor("no_norm", seed=4)
    counts = naive.get_pattern()[0].sum(0).repeat(2, 2)
    torch.testing.assert_close(no_norm(x)[:, 0, 0] * 16, naive(x)[:, 0, 0] * counts)


def test_global_pattern_is_untiled():
    sensor = build_sensor("global", input_size=32)
    assert sensor.get_pattern().shape == (1, 16, 32, 32)
    with pytest.raises(ValueError, match="divisible"):
        sensor(torch.rand(1, 1, 16, 40, 40))


def test_pami_layer():
    layer = PamiExposure(generator=torch.Generator().manual_seed(0))
    assert layer.sigma == pytest.approx(2.734e-3, rel=1e-3)
    assert layer.lr_scale == pytest.approx(1 / layer.sigma)
    assert layer.logits.abs().max() <= layer.sigma
    with torch.no_grad():
        layer.logits.copy_(torch.linspace(-1, 1, 1024).reshape(1, 16, 8, 8))
        layer.logits[0, :, 0, 0] = -1.0  # an unexposed pixel is allowed (no forced slot)
    p = layer.get_pattern()
    assert torch.equal(p, (layer.logits.detach() >= 0).float())
    x = torch.rand(1, 1, 16, 16, 16)
    layer.eval()
    tiled = p[0].repeat(1, 2, 2)
    torch.testing.assert_close(layer(x)[0, 0, 0], (x[0, 0] * tiled).sum(0) / 16)
    assert layer(x)[0, 0, 0, 0, 0] == 0
    layer.train()
    left = int(layer.anneal_left)
    layer(x).sum().backward()
    assert int(layer.anneal_left) == left - 1 and layer.logits.grad is not None


def test_zoo_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_sensor("decor_fixed")
    message = str(err.value)
    assert "decor_fixed" in message
    for name in ("decor_fix", "decor_learn", "naive", "naive_learned", "sparse", "long", "short", "global", "pami"):
        assert name in message and name in CODED_TYPES


def test_zoo_decor_without_a_file_uses_the_shipped_pattern(tmp_path, monkeypatch):
    monkeypatch.delenv("SNAPPIX_PATTERN_DIR", raising=False)
    fix = build_sensor("decor_fix")  # no --pattern / --pattern_dir: SnapPix's pattern_4 shipped with the package
    assert "pattern_4" in fix.source and int(fix.get_pattern().sum()) == 116
    with pytest.raises(FileNotFoundError, match="pattern_4.pth"):  # an explicit folder must hold the file
        build_sensor("decor_fix", pattern_dir=tmp_path)
    sparse = build_sensor("sparse", seed=1)  # random fallback without a folder
    assert torch.all(sparse.get_pattern().sum(dim=1) == 1)
    assert not sparse.logits.requires_grad
    assert build_sensor("naive_learned").logits.requires_grad


# ------------------------------------------------------------------------------------------- pattern files
@needs_patterns
def test_snappix_pattern_files_load_safely():
    p4 = load_pattern(PATTERN_DIR / "pattern_4.pth")
    stats = pattern_stats(p4)
    assert p4.shape == (1, 16, 8, 8) and p4.dtype == torch.float32
    assert stats["ones"] == 116 and stats["exposures_per_pixel"] == {"min": 1, "mean": 1.8125, "max": 5}
    assert stats["ones_per_slot"] == [11, 6, 7, 5, 7, 7, 7, 9, 5, 9, 8, 7, 8, 5, 7, 8]
    assert pattern_stats(load_pattern(PATTERN_DIR / "pattern_init.pth"))["ones"] == 517
    assert torch.all(load_pattern(PATTERN_DIR / "pattern_init_sparse.pth").sum(dim=1) == 1)


@needs_patterns
def test_zoo_uses_released_patterns():
    fix = build_sensor("decor_fix", pattern_dir=PATTERN_DIR)
    learn = build_sensor("decor_learn", pattern_dir=PATTERN_DIR)
    p4 = load_pattern(PATTERN_DIR / "pattern_4.pth")
    assert torch.equal(fix.get_pattern(), p4) and torch.equal(learn.get_pattern(), p4)
    assert not fix.logits.requires_grad and learn.logits.requires_grad
    assert torch.equal(build_sensor("naive", pattern_dir=PATTERN_DIR).get_pattern(),
                       load_pattern(PATTERN_DIR / "pattern_init.pth"))
    with pytest.raises(ValueError, match="does not fit"):
        build_sensor("decor_fix", num_frames=8, pattern_dir=PATTERN_DIR)


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pattern_file_is_refused_without_executing(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save({"pattern": _Evil(str(marker))}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(_Evil(str(marker)), f)
    with pytest.raises(PatternFileError, match="refusing"):
        load_pattern(path)
    assert not marker.exists()


def test_non_numeric_numpy_is_refused(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save(np.array([{"a": 1}], dtype=object), path)
    with pytest.raises(PatternFileError):
        load_pattern(path)


def test_save_and_load_roundtrip(tmp_path):
    layer = CodedExposure(num_frames=16, tile_size=8, generator=torch.Generator().manual_seed(5))
    pth, png = save_pattern(layer.get_pattern(), tmp_path / "sub" / "pattern_3")
    assert pth.name == "pattern_3.pth" and png.name == "pattern_3.png" and png.stat().st_size > 1000
    assert torch.equal(torch.load(pth, weights_only=True), layer.get_pattern())
    assert torch.equal(load_pattern(pth), layer.get_pattern())
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(PatternFileError):
        load_pattern(tmp_path / "missing.pth")
    torch.save(torch.full((16, 8, 8), 0.5), tmp_path / "half.pth")
    with pytest.raises(PatternFileError, match="binary"):
        load_pattern(tmp_path / "half.pth")


@needs_patterns
def test_pattern_4_codes_a_real_clip_like_the_hand_computation(videos_dir):
    from snappix.data.video import open_video
    from snappix.tools.preprocess import preprocess_frame

    with open_video(videos_dir / "test.mp4") as reader:
        rgb = reader.get_frames(np.arange(16) * 4)
    grey = np.stack([preprocess_frame(np.ascontiguousarray(f[..., ::-1])) for f in rgb])  # (16, 112, 148)
    crop = grey[:, :, 18:130].astype(np.float64) / 255.0
    sensor = build_sensor("decor_fix", pattern_dir=PATTERN_DIR)
    out = sensor(torch.from_numpy(crop).float()[None, None])
    p4 = load_pattern(PATTERN_DIR / "pattern_4.pth")[0].numpy()
    ref = hand_code(crop[:, :40, :40], p4)  # loops are slow: check a 40x40 corner with loops ...
    np.testing.assert_allclose(out[0, 0, 0, :40, :40].double().numpy(), ref, rtol=1e-6, atol=1e-7)
    tiled = np.tile(p4, (1, 14, 14))  # ... and the whole image against the vectorised formula
    full = (crop * tiled).sum(0) / tiled.sum(0)
    np.testing.assert_allclose(out[0, 0, 0].double().numpy(), full, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------- noise
def test_noise_off_by_default_and_spec_parsing():
    assert build_sensor("naive").noise is None
    assert SensorNoise.from_spec("none") is None
    noise = SensorNoise.from_spec("full_well=5000, read_noise=3, adc_bits=none, shot=poisson")
    assert (noise.full_well_e, noise.read_noise_e, noise.adc_bits, noise.shot) == (5000.0, 3.0, None, "poisson")
    with pytest.raises(ValueError, match="bad sensor noise item"):
        SensorNoise.from_spec("fullwell=3")
    with pytest.raises(ValueError):
        SensorNoise(adc_bits=40)


def test_noise_statistics_and_quantisation():
    gen = torch.Generator().manual_seed(0)
    phi = torch.full((200_000,), 0.5)
    shot = SensorNoise(full_well_e=100.0, read_noise_e=0.0, adc_bits=None, generator=gen)(phi)
    assert shot.mean().item() == pytest.approx(0.5, abs=2e-3)
    assert shot.var().item() == pytest.approx(50.0 / 100.0 ** 2, rel=0.05)  # Poisson: var(e) = e
    read = SensorNoise(full_well_e=100.0, read_noise_e=5.0, adc_bits=None, shot="none", generator=gen)(phi)
    assert read.std().item() == pytest.approx(0.05, rel=0.05)
    quant = SensorNoise(full_well_e=1e9, read_noise_e=0.0, adc_bits=4, shot="none")(torch.rand(1000))
    assert torch.allclose(quant * 15, torch.round(quant * 15), atol=1e-5)
    sat = SensorNoise(full_well_e=100.0, generator=gen)(torch.full((100,), 3.0))
    assert torch.all(sat <= 1.0)


def test_noise_in_layer_scales_with_exposures_and_keeps_gradients():
    noise = SensorNoise(full_well_e=1000.0, read_noise_e=0.0, adc_bits=None, generator=torch.Generator().manual_seed(1))
    x = torch.full((64, 1, 16, 8, 8), 0.5)
    long = CodedExposure(num_frames=16, tile_size=8, init_pattern=torch.ones(16, 8, 8), trainable=False, noise=noise)
    short_p = torch.zeros(16, 8, 8)
    short_p[3] = 1
    short = CodedExposure(num_frames=16, tile_size=8, init_pattern=short_p, trainable=False, noise=noise)
    # 16x more charge for the long exposure -> 4x lower noise after normalisation
    ratio = short(x).std().item() / long(x).std().item()
    assert 3.0 < ratio < 5.3
    learn = CodedExposure(num_frames=16, tile_size=8, noise=noise)
    learn(torch.rand(2, 1, 16, 8, 8)).sum().backward()
    assert learn.logits.grad is not None and learn.logits.grad.abs().sum() > 0
