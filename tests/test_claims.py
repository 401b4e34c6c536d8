"""The claims tool (snappix.tools.claims): resumable parts, Markdown sections, the generalisation study's scoring
(equal to the documented decorrelation protocol), exact symmetrisation of the moments, and (slow) a --fast run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_videos_dir, write_lossless_video
from snappix.sensor import load_shipped_pattern
from snappix.sensor.moments import SYMMETRIES, TileMoments, symmetry_permutations
from snappix.tools.claims import decor
from snappix.tools.claims.report import Parts, read_sections, write_section

PATTERN_4 = Path(__file__).resolve().parents[1] / "snappix" / "sensor" / "patterns_data" / "pattern_4.npy"


# ------------------------------------------------------------------------------------------- plumbing
def test_parts_resume_skips_finished_parts(tmp_path):
    parts, calls = Parts(tmp_path), []

    def work():
        calls.append(1)
        return {"value": 3}

    first = parts.run("fit a/b", work, log=lambda m: None)
    second = parts.run("fit a/b", work, log=lambda m: None)
    assert calls == [1] and first["value"] == second["value"] == 3 and "seconds" in second
    assert Parts(tmp_path).get("fit a/b")["value"] == 3          # a new run sees it too
    parts.path("broken").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        parts.get("broken")


def test_write_section_replaces_one_section_and_keeps_the_others(tmp_path):
    md = tmp_path / "doc.md"
    order = ["one", "two", "three"]
    write_section(md, "one", "first v1\n", order)
    write_section(md, "three", "third\n", order)
    md.write_text(md.read_text() + "\nhand-written note\n")
    write_section(md, "two", "second\n", order)                  # goes between one and three
    write_section(md, "one", "first v2\n", order)                # rewritten in place
    text = md.read_text()
    assert read_sections(text) == {"one": "first v2\n", "two": "second\n", "three": "third\n"}
    assert text.index("first v2") < text.index("second") < text.index("third")
    assert "hand-written note" in text and "first v1" not in text and text.startswith("# SnapPix in miniature")
    assert not list(tmp_path.glob(".*tmp"))                      # atomic: no temporary file left


def test_scenes_keep_clips_of_the_same_scene_together():
    paths = ["/x/demo.mp4", "/x/test.avi", "/x/demo_spatiotemporal_det.mp4", "/x/test.mp4",
             "/x/rawvideo_dataset_part_0.mp4", "/y/other.mp4"]
    assert decor.group_by_scene(paths) == {"arm-wrestling": [0, 2], "make-up": [1], "pool": [3, 4],
                                           "other.mp4": [5]}


# ------------------------------------------------------------------------------------------- moments
def _transforms(clip: torch.Tensor) -> list[torch.Tensor]:
    """The 16 images of a (B, C, T, H, W) clip under the dihedral group of the frame and time reversal."""
    out = []
    for base in (clip, clip.flip(4)):
        out += [torch.rot90(base, k, dims=(3, 4)) for k in range(4)]
    return out + [c.flip(2) for c in out]


@pytest.mark.parametrize("symmetry", ["flip", "dihedral", "dihedral_time"])
def test_symmetrised_moments_equal_training_on_transformed_clips(symmetry):
    clip = torch.rand(2, 1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    sym = TileMoments(4, 8, True, symmetry=symmetry)
    sym.update(clip)
    aug = TileMoments(4, 8, True)
    group = {"flip": [clip, clip.flip(4)], "dihedral": _transforms(clip)[:8], "dihedral_time": _transforms(clip)}
    for c in group[symmetry]:
        aug.update(c)
    assert len(group[symmetry]) == SYMMETRIES[symmetry] == len(symmetry_permutations(symmetry, 4, (8, 8)))
    torch.testing.assert_close(sym.covariance(), aug.covariance(), atol=1e-5, rtol=0)  # float32 tile vectors
    with pytest.raises(ValueError, match="square"):
        TileMoments(4, (4, 8), True, symmetry="dihedral")


def test_moments_add_equals_updating_with_all_clips():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 4, 16, 16, generator=g), torch.rand(3, 1, 4, 16, 16, generator=g)
    ma, mb, both = TileMoments(4, 8, True), TileMoments(4, 8, True), TileMoments(4, 8, True)
    ma.update(a), mb.update(b), both.update(a), both.update(b, weight=2.0)
    mixed = decor.mix([(ma, 1.0), (mb, 2.0)])
    torch.testing.assert_close(mixed.covariance(), both.covariance())
    pattern, stats = decor.fit_pattern(mixed, seed=0, steps=5, max_flips=10)
    assert pattern.shape == (1, 4, 8, 8) and set(pattern.unique().tolist()) <= {0.0, 1.0}
    assert pattern.sum(dim=1).min() >= 1 and stats["refine_after"] <= stats["refine_before"]


# ------------------------------------------------------------------------------------------- scoring
@pytest.fixture
def two_clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate((70, 40)):             # one clip with a full window, one shorter (clamped window)
        base = rng.integers(0, 256, (n, 120, 160, 1), dtype=np.uint8)
        write_lossless_video(folder / f"v{i}.mp4", np.repeat(base, 3, axis=3))
    return folder


def _cli_score(folder: Path, out: Path) -> float:
    from snappix.decorrelation.cli import main

    assert main(["--data_path", str(folder), "--preprocess", "snappix", "--patch_norm_coded", "--test_pattern",
                 "--pattern", str(PATTERN_4), "--output_dir", str(out), "--no_progress"]) == 0
    return [json.loads(line) for line in (out / "log.txt").read_text().splitlines()][-1]["val_mean_abs_r"]


def test_held_out_score_is_the_documented_protocol(two_clips, tmp_path):
    from snappix.decorrelation.data import GreyClipSource, list_videos

    source = GreyClipSource(list_videos(two_clips), preprocess="snappix")
    pattern = load_shipped_pattern("pattern_4")
    assert decor.score_pattern(pattern, source, [0, 1]) == pytest.approx(_cli_score(two_clips, tmp_path / "a"),
                                                                         abs=1e-9)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(two_clips / "v1.mp4", alone / "v1.mp4")          # the held-out clip on its own
    assert decor.score_pattern(pattern, source, [1]) == pytest.approx(_cli_score(alone, tmp_path / "b"), abs=1e-9)


def test_held_out_scores_on_the_real_clips(videos_dir):
    from snappix.decorrelation.data import GreyClipSource, list_videos

    source = GreyClipSource(list_videos(videos_dir), preprocess="snappix")
    pattern = load_shipped_pattern("pattern_4")
    assert abs(decor.score_pattern(pattern, source, list(range(len(source)))) - 0.1262) < 1e-3  # protocol doc §2
    scenes = decor.group_by_scene(source.paths)
    for held in scenes.values():
        assert 0.0 < decor.score_pattern(pattern, source, held) < 0.5


# ------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_fast_study_end_to_end_and_resume(tmp_path, capsys):
    from snappix.tools.claims.cli import main

    videos = shared_videos_dir()
    args = ["--study", "generalisation", "--fast", "--work_dir", str(tmp_path / "work"),
            "--out_md", str(tmp_path / "doc.md")] + (["--videos", str(videos)] if videos else ["--videos", ""])
    assert main(args) == 0
    first = capsys.readouterr().out
    section = read_sections((tmp_path / "doc.md").read_text())["generalisation"]
    assert "pattern_4" in section and "command: `python -m snappix.tools.claims" in section
    assert ("held-out scene" in section) if videos else ("No real clips" in section)
    assert ": running" in first
    assert main(args) == 0                                        # resumed: every part reused
    second = capsys.readouterr().out
    assert ": running" not in second and "already done, reused" in second


def test_run_decorrelation_training_symmetrize_flag(two_clips, tmp_path):
    from snappix.decorrelation.cli import main

    base = ["--data_path", str(two_clips), "--preprocess", "snappix", "--input_size", "32", "--num_frames", "8",
            "--sampling_rate", "2", "--batch_size", "4", "--num_sample", "2", "--patch_norm_coded", "--epochs", "1",
            "--lr", "0.01", "--no_progress", "--symmetrize", "dihedral"]
    assert main(base + ["--objective", "moments", "--moment_steps", "3", "--output_dir", str(tmp_path / "a")]) == 0
    state = torch.load(tmp_path / "a" / "checkpoint-latest.pth", weights_only=True)
    assert state["config"]["symmetrize"] == "dihedral"
    with pytest.raises(SystemExit):                               # minibatch without refinement: no moments
        main(base + ["--objective", "minibatch", "--output_dir", str(tmp_path / "b")])
