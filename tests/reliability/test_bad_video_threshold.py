"""The bad-video threshold is counted globally: over DataLoader workers and over DDP ranks.

The rule (README, ``docs/reliability.md``, :mod:`snappix.data.bad_videos`): the run stops when at least
2 distinct videos failed and they are more than ``--max_bad_fraction`` of the distinct videos tried.
Before, each worker (and rank) counted only its own failures, so one bad video per worker never stopped a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from conftest import REPO, synthetic_frames, write_lossless_video
from snappix.data.datasets import BAD_VIDEOS_FILE, TooManyBadVideos, VideoClsDataset

pytestmark = pytest.mark.bad_input

ROWS = 12


@pytest.fixture(scope="module")
def twelve(tmp_path_factory) -> Path:
    """12 short videos ``v0.mp4`` .. ``v11.mp4`` (rows 3 and 8 are made unreadable by the tests)."""
    root = tmp_path_factory.mktemp("twelve")
    for i in range(ROWS):
        write_lossless_video(root / f"v{i}.mp4", synthetic_frames(6, height=32, width=32, seed=i))
    return root


def _list(root: Path, tmp_path: Path, bad: tuple[int, ...]) -> Path:
    """A list over copies of the videos in ``tmp_path`` where the rows ``bad`` are junk files."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(ROWS):
        target = data / f"v{i}.mp4"
        target.write_bytes(b"not a video" * 20 if i in bad else (root / f"v{i}.mp4").read_bytes())
        rows.append(f"v{i}.mp4 {i % 2}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    return data


def test_threshold_counts_failures_of_all_dataloader_workers(twelve, tmp_path):
    """2 workers, one bad video each: 2 of at most 12 tried > 10 %: the run stops, naming both."""
    data = _list(twelve, tmp_path, bad=(3, 8))  # batch 1, 2 workers: item 3 -> worker 1, item 8 -> worker 0
    ds = VideoClsDataset(str(tmp_path / "list.csv"), str(data), mode="validation", num_frames=4,
                         sampling_rate=1, input_size=32, short_side_size=32, max_bad_fraction=0.1,
                         check_missing=False, log_dir=str(tmp_path / "log"))
    with pytest.raises(TooManyBadVideos) as err:
        for _ in DataLoader(ds, batch_size=1, num_workers=2):
            pass
    msg = str(err.value)
    assert "2 of" in msg and "v3.mp4" in msg and "v8.mp4" in msg and "--max_bad_fraction" in msg, msg
    assert ds.num_bad == 2  # the main process sees the workers' counts (shared memory)
    logged = (tmp_path / "log" / BAD_VIDEOS_FILE).read_text()
    assert "v3.mp4" in logged and "v8.mp4" in logged


def test_one_bad_video_stays_below_the_minimum_of_two(twelve, tmp_path):
    data = _list(twelve, tmp_path, bad=(3,))
    ds = VideoClsDataset(str(tmp_path / "list.csv"), str(data), mode="validation", num_frames=4,
                         sampling_rate=1, input_size=32, short_side_size=32, max_bad_fraction=0.01,
                         check_missing=False)
    batches = list(DataLoader(ds, batch_size=1, num_workers=2))
    assert len(batches) == ROWS and sum(int(b["substituted"]) for b in batches) == 1
    assert ds.num_bad == 1 and ds.tracker.seen == ROWS


_RANKS = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    from torch import nn
    from snappix.data.datasets import TooManyBadVideos, VideoClsDataset
    from snappix.engine.distributed import DistInfo
    from snappix.engine.loop import evaluate
    from snappix.engine.runner import build_loader
    import argparse

    def run(rank, data, lst, port):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=2)
        ds = VideoClsDataset(lst, data, mode="validation", num_frames=4, sampling_rate=1, input_size=32,
                             short_side_size=32, max_bad_fraction=0.1, check_missing=False)
        args = argparse.Namespace(seed=0, batch_size=2, num_workers=0, pin_mem=False, loader_timeout=0)
        loader, _ = build_loader(ds, args, DistInfo(rank=rank, world_size=2, local_rank=rank), train=False)
        try:
            evaluate(nn.Flatten(), lambda o, b: (o.float().mean(), {}), loader, "cpu", precision="fp32")
            print(f"rank {rank}: no error, {ds.num_bad} bad on this rank", flush=True)
        except TooManyBadVideos as exc:
            print(f"rank {rank}: stopped, {ds.num_bad} bad on this rank: {exc}", flush=True)
        dist.destroy_process_group()

    if __name__ == "__main__":
        torch.multiprocessing.spawn(run, args=tuple(sys.argv[1:]), nprocs=2)
""")


def test_threshold_counts_failures_of_all_ranks(twelve, tmp_path):
    """2 gloo ranks, one bad video on each (below the minimum of 2 per rank): both ranks stop together."""
    data = _list(twelve, tmp_path, bad=(3, 8))  # sampler: rank 1 gets rows 1, 3, ..., rank 0 rows 0, 2, ..., 8
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("SNAPPIX_FAULT_INJECT", None)
    port = str(29000 + os.getpid() % 900)
    proc = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "list.csv"), port],
                          env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: stopped, 1 bad on this rank: 2 of" in out, out[-3000:]
    assert "of 2 ranks" in out and "v3.mp4" in out and "v8.mp4" in out, out[-3000:]
