"""Study "generalisation": does a learned pattern stay as decorrelating as pattern_4 on clips it never saw?

Protocol (score = mean |off-diagonal r| of ``docs/decorrelation_protocol.md``, always on clips left out of
training; SnapPix: https://arxiv.org/abs/2504.04535):

1. **synthetic -> real**: a pattern learned on synthetic clips only (``snappix.tools.make_synthetic``,
   64 frames, 120 x 160, generated into the work folder) is scored on all real clips (``--videos``, default
   ``$SNAPPIX_TEST_VIDEOS``).
2. **leave one scene out**: the real clips are grouped by scene (:data:`snappix.tools.claims.decor.SCENES`:
   clips that show the same scene share a fold) and, per fold, a pattern learned on the other scenes
   (with or without the synthetic clips) is scored on the held-out scene.

Next to them on the same held-out clips: pattern_4, long, short, naive (``pattern_init``) and sparse
(``pattern_init_sparse``). The recipes (:data:`RECIPES`) are fixed in advance; nothing is selected on held-out
clips. Without real clips the study trains on the first 75 % of the synthetic clips and scores on the rest,
and its section says so.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snappix.decorrelation.data import GreyClipSource, list_videos
from snappix.tools.claims import decor
from snappix.tools.claims.decor import FIXED, fixed_pattern
from snappix.tools.claims.generalisation_table import render
from snappix.tools.claims.report import Parts

__all__ = ["NAME", "Settings", "RECIPES", "FIXED", "run_study", "render"]

NAME = "generalisation"
#: learned recipes: weight of the synthetic clips relative to the real training clips (total tiles; None =
#: synthetic only), the symmetry the moments are averaged over (``--symmetrize``) and the frame steps of the
#: real training windows (4 = the protocol's; 2 and 1 show the same clips with slower motion)
RECIPES = {
    "five_clip": dict(synthetic=0.0, symmetry="none", rates=(4,),
                      label="learned, real training scenes only (the recipe of docs/decorrelation_protocol.md §3)"),
    "regularised": dict(synthetic=1.0, symmetry="dihedral", rates=(4,),
                        label="learned, real training scenes + synthetic (equal weight), dihedral symmetrisation"),
    "varied": dict(synthetic=1.0, symmetry="dihedral", rates=(4, 2, 1),
                   label="as `regularised`, real training windows also at frame steps 2 and 1 (slower motion)"),
    "synthetic_only": dict(synthetic=None, symmetry="dihedral", rates=(4,),
                           label="learned on synthetic clips only, dihedral symmetrisation"),
}
#: recipes trained per fold on the other real scenes
FOLD_RECIPES = ("five_clip", "regularised", "varied")
#: fixed patterns shown for comparison -> label
@dataclass(frozen=True)
class Settings:
    """Sizes of a run: full (the documented one) or ``--fast`` (tests; about a minute)."""

    num_synthetic: int = 384
    steps: int = 2000
    max_flips: int = 1000
    train_stride: int = 4
    lr: float = 1e-3

    @classmethod
    def of(cls, fast: bool) -> "Settings":
        """``Settings()`` or the ``--fast`` sizes (24 synthetic clips, 200 steps, 100 flips, stride 16)."""
        return cls(num_synthetic=24, steps=200, max_flips=100, train_stride=16) if fast else cls()


def make_synthetic(out_dir: Path, num_videos: int, seed: int) -> dict:
    """Generate the synthetic clips with ``python -m snappix.tools.make_synthetic`` (64 frames, 120 x 160).

    Raises:
        RuntimeError: the generator failed (its output is in the message).
    """
    cmd = [sys.executable, "-m", "snappix.tools.make_synthetic", str(out_dir), "--num_videos", str(num_videos),
           "--num_frames", "64", "--height", "120", "--width", "160", "--seed", str(seed), "--workers", "1",
           "--no_progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"synthetic clips for {out_dir} failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return {"videos": str(out_dir / "videos"), "command": " ".join(cmd[1:])}


class _Study:
    """State of one run: parts store, lazily decoded clip sources, cached moments."""

    def __init__(self, work: Path, videos: str | None, settings: Settings, seed: int, log=print):
        self.work, self.videos, self.s, self.seed, self.log = work, videos, settings, seed, log
        self.parts = Parts(work)
        self._sources: dict[str, GreyClipSource] = {}

    # ------------------------------------------------------------------ data
    def source(self, kind: str) -> GreyClipSource:
        """Decoded clips (``"real"`` or ``"synthetic"``), read on first use."""
        if kind not in self._sources:
            folder = self.videos if kind == "real" else self.parts.get("synthetic_clips")["videos"]
            t0 = time.time()
            self._sources[kind] = GreyClipSource(list_videos(folder), preprocess="snappix", num_workers=1)
            self.log(f"[claims] decoded {len(self._sources[kind])} {kind} clips in {time.time() - t0:.1f} s")
        return self._sources[kind]

    def moments(self, kind: str, videos: list[int], tag: str, rate: int = 4) -> "decor.TileMoments":
        """Moments of some clips (windows at frame step ``rate``), computed once and kept in the work folder."""
        tag = tag if rate == 4 else f"{tag}_rate{rate}"
        path = self.work / "moments" / f"{tag}.pth"

        def compute() -> dict:
            path.parent.mkdir(parents=True, exist_ok=True)
            m = decor.clip_moments(self.source(kind), videos, self.s.train_stride, sampling_rate=rate)
            decor.save_moments(m, path)
            return {"path": str(path), "tiles": m.weight}

        self.parts.run(f"moments_{tag}", compute, self.log)
        return decor.load_moments(path)

    def learn(self, recipe: str, fold: str, real: list[tuple[int, str]], synthetic: list[int]) -> dict:
        """Fit one recipe on ``real`` training clips ``(index, tag)`` plus synthetic clips; saves the pattern."""
        spec = RECIPES[recipe]

        def compute() -> dict:
            parts = [(self.moments("real", [i], tag, rate), 1.0) for rate in spec["rates"] for i, tag in real] \
                if spec["synthetic"] is not None else []
            if spec["synthetic"] is None or spec["synthetic"] > 0:
                syn = self.moments("synthetic", synthetic, f"synthetic_{len(synthetic)}")
                real_tiles = sum(m.weight for m, _ in parts)
                parts.append((syn, spec["synthetic"] * real_tiles / syn.weight if parts else 1.0))
            pattern, stats = decor.fit_pattern(decor.mix(parts, spec["symmetry"]), self.seed, self.s.steps,
                                               self.s.lr, self.s.max_flips)
            out = self.work / "patterns" / f"{recipe}_{fold}.npy"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp.npy")
            np.save(tmp, pattern.numpy().astype(np.uint8))
            os.replace(tmp, out)
            return {"pattern": str(out), **stats}

        return self.parts.run(f"fit_{recipe}_{fold}", compute, self.log)

    def score(self, name: str, pattern_fn, kind: str, videos: list[int], where: str) -> float:
        """Protocol score of a pattern on held-out clips (a part of its own)."""
        return self.parts.run(f"score_{name}_on_{where}", lambda: {
            "mean_abs_r": decor.score_pattern(pattern_fn(), self.source(kind), videos)}, self.log)["mean_abs_r"]


def _load(path: str):
    return lambda: torch.from_numpy(np.load(path).astype(np.float32))


def _fixed_rows(st: _Study, kind: str, targets: dict[str, list[int]]) -> dict:
    return {name: {w: st.score(name, lambda n=name: fixed_pattern(n), kind, v, w) for w, v in targets.items()}
            for name in FIXED}


def _real_study(st: _Study) -> dict:
    real = st.source("real")
    scenes = decor.group_by_scene(real.paths)
    if len(scenes) < 2:
        raise ValueError(f"{st.videos}: the leave-one-scene-out folds need clips of at least 2 scenes, "
                         f"found {list(scenes)}")
    n_syn = len(st.source("synthetic"))
    targets = {"all": list(range(len(real))), **scenes}
    rows = _fixed_rows(st, "real", targets)
    fit = st.learn("synthetic_only", "all", [], list(range(n_syn)))
    rows["synthetic_only"] = {w: st.score("synthetic_only", _load(fit["pattern"]), "real", v, w)
                              for w, v in targets.items()}
    train_fit = {}
    for recipe in FOLD_RECIPES:
        rows[recipe], train_fit[recipe] = {}, {}
        for scene, held in scenes.items():
            train = [(i, f"real_{Path(real.paths[i]).name}") for i in range(len(real)) if i not in held]
            fit = st.learn(recipe, scene, train, list(range(n_syn)))
            rows[recipe][scene] = st.score(f"{recipe}_{scene}", _load(fit["pattern"]), "real", held, scene)
            train_fit[recipe][scene] = st.score(f"{recipe}_{scene}", _load(fit["pattern"]), "real",
                                                [i for i, _ in train], f"train_of_{scene}")
    return {"mode": "real", "scenes": {k: [Path(real.paths[i]).name for i in v] for k, v in scenes.items()},
            "rows": rows, "train_fit": train_fit, "clips": [Path(p).name for p in real.paths]}


def _synthetic_study(st: _Study) -> dict:
    n = len(st.source("synthetic"))
    cut = max(1, int(0.75 * n))
    targets = {"synthetic_heldout": list(range(cut, n))}
    rows = _fixed_rows(st, "synthetic", targets)
    fit = st.learn("synthetic_only", "synthetic_train", [], list(range(cut)))
    rows["synthetic_only"] = {"synthetic_heldout": st.score("synthetic_only", _load(fit["pattern"]), "synthetic",
                                                             targets["synthetic_heldout"], "synthetic_heldout")}
    return {"mode": "synthetic", "rows": rows, "split": [cut, n - cut]}


def run_study(work_dir: str | os.PathLike, videos: str | None, fast: bool = False, seed: int = 0,
              log=print) -> dict:
    """Run (or resume) the study in ``work_dir/generalisation``; returns the results (see :func:`render`).

    Args:
        videos: folder of real clips, or None / missing folder: synthetic clips only.
        fast: the small :meth:`Settings.of` sizes; ``seed``: seed of the synthetic clips and of the fits.

    Raises:
        RuntimeError: the synthetic clips could not be generated; ValueError: unreadable parts / moments.
    """
    settings = Settings.of(fast)
    work = Path(work_dir) / NAME / ("fast" if fast else "full") / f"seed{seed}"
    has_real = bool(videos) and Path(videos).is_dir()
    st = _Study(work, videos if has_real else None, settings, seed, log)
    syn_dir = work / f"synthetic_{settings.num_synthetic}"
    st.parts.run("synthetic_clips", lambda: make_synthetic(syn_dir, settings.num_synthetic, seed), log)
    result = _real_study(st) if has_real else _synthetic_study(st)
    parts_s = sum(float((st.parts.get(p.stem) or {}).get("seconds", 0.0)) for p in (work / "parts").glob("*.json"))
    labels = {**FIXED, **{k: v["label"] for k, v in RECIPES.items()}}
    result.update({"settings": dict(settings.__dict__), "seed": seed, "parts_seconds": parts_s, "work_dir": str(work),
                   "labels": labels})
    return result

