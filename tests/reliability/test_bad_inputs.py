"""Bad inputs: each kind gives a clear error (naming the file, and the line for list rows) or the
documented skip, in the data doctor and in the datasets used for training.

Documented behaviour checked here:

* an unreadable file (zero bytes, truncated, random bytes, text, missing, a directory) is ``bad`` in
  ``check_data`` (with a ``kind: detail`` reason) and, in training, is replaced by the next readable
  row, logged with its path in ``bad_videos.txt`` and flagged ``substituted`` (DESIGN: never silent);
* a video shorter than the clip (1 frame, fewer than ``num_frames``) is ``short`` (kept, a warning)
  and gives a full clip with repeated frames;
* odd sizes, vertical and variable-frame-rate videos decode to the configured clip shape;
* a malformed list row, a non-numeric label, a row without its label and a label beyond
  ``--nb_classes`` raise errors naming ``file:line``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from snappix.data.datasets import BAD_VIDEOS_FILE, VideoClsDataset
from snappix.data.lists import ListEntry, ListFormatError, read_list
from snappix.tools.check_data import check_entry

from .conftest import NUM_FRAMES, UNREADABLE

pytestmark = pytest.mark.bad_input
sys.path.insert(0, str(REPO))  # run_finetuning


def _dataset(root: Path, tmp_path: Path, name: str) -> VideoClsDataset:
    """A validation dataset over ``[name, good.mp4]`` that tolerates any failure rate."""
    lst = tmp_path / f"{name}.csv"
    lst.write_text(f"{name} 0\ngood.mp4 1\n")
    return VideoClsDataset(str(lst), str(root), mode="validation", num_frames=NUM_FRAMES, sampling_rate=2,
                           input_size=32, short_side_size=32, max_bad_fraction=1.0, log_dir=str(tmp_path / "log"))


# ---------------------------------------------------------------------------------------------------
# unreadable files: 'bad' in the doctor; substituted, logged and flagged in training
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_file_is_bad_and_substituted_visibly(bad_root, tmp_path, name):
    status, reason = check_entry(ListEntry(str(bad_root / name), name), deep=True, num_frames=NUM_FRAMES)
    assert status == "bad", (name, reason)
    assert reason.split(":")[0] in UNREADABLE[name], (name, reason)
    assert reason.partition(": ")[2], "the reason has a human-readable detail"

    ds = _dataset(bad_root, tmp_path, name)
    sample = ds[0]
    assert bool(sample["substituted"]) and sample["index"] == 1  # the next readable row, flagged
    assert tuple(sample["video"].shape) == (1, NUM_FRAMES, 32, 32)
    logged = (tmp_path / "log" / BAD_VIDEOS_FILE).read_text().splitlines()
    assert len(logged) == 1 and logged[0].startswith(str(bad_root / name) + "\t")
    assert logged[0].endswith(f"substitute={bad_root / 'good.mp4'}")
    assert ds.describe_item(0) == f"{bad_root / name} ({tmp_path / (name + '.csv')}:1)"


# ---------------------------------------------------------------------------------------------------
# short, odd-sized, vertical, variable-frame-rate videos: usable, documented behaviour
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,frames", [("one_frame.mp4", 1), ("too_short.mp4", NUM_FRAMES - 1)])
def test_short_video_is_a_warning_and_repeats_frames(bad_root, tmp_path, name, frames):
    status, reason = check_entry(ListEntry(str(bad_root / name), name), deep=True, num_frames=NUM_FRAMES)
    assert status == "short" and reason == f"short: {frames} frames < num_frames {NUM_FRAMES}"
    sample = _dataset(bad_root, tmp_path, name)[0]
    assert not sample["substituted"] and sample["index"] == 0
    video = sample["video"]
    assert tuple(video.shape) == (1, NUM_FRAMES, 32, 32) and video.isfinite().all()
    if frames == 1:  # every clip frame is the one frame
        for t in range(1, NUM_FRAMES):
            assert np.allclose(video[:, t].numpy(), video[:, 0].numpy())
    assert not (tmp_path / "log" / BAD_VIDEOS_FILE).exists()


@pytest.mark.parametrize("name", ["odd_113x75.mp4", "vertical_48x96.mp4", "vfr.mp4"])
def test_odd_geometry_and_vfr_decode_to_the_clip_shape(bad_root, tmp_path, name):
    if name == "vfr.mp4":  # the file really has variable frame intervals
        import av

        with av.open(str(bad_root / name)) as c:
            pts = [f.pts for f in c.decode(video=0)]
        assert len(set(np.diff(pts).tolist())) > 1, pts
    assert check_entry(ListEntry(str(bad_root / name), name), deep=True, num_frames=NUM_FRAMES) == ("ok", "")
    sample = _dataset(bad_root, tmp_path, name)[0]
    assert not sample["substituted"]
    assert tuple(sample["video"].shape) == (1, NUM_FRAMES, 32, 32) and sample["video"].isfinite().all()


# ---------------------------------------------------------------------------------------------------
# list rows: errors naming file and line
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row,pattern", [
    ("video.mp4", r"expected .*label"),                # malformed: a row without its label
    ("video.mp4 dog", r"dog"),                         # non-numeric label
])
def test_bad_list_row_names_file_and_line(tmp_path, row, pattern):
    lst = tmp_path / "train.csv"
    lst.write_text(f"good.mp4 0\n\n{row}\n")
    with pytest.raises(ListFormatError, match=rf"{re.escape(str(lst))}:3: .*{pattern}"):
        read_list(lst, "cls")
    with pytest.raises(ListFormatError, match=rf"{re.escape(str(lst))}:3: "):
        VideoClsDataset(str(lst), str(tmp_path), mode="validation", check_missing=False)


def test_wrong_label_count_names_file_and_line(tmp_path):
    """More classes in the list than --nb_classes / --data_set allow: the first offending row is named."""
    import run_finetuning

    lst = tmp_path / "train.csv"
    lst.write_text("a.mp4 0\nb.mp4 100\nc.mp4 101\n")
    args = run_finetuning.build_parser().parse_args(
        ["--model", "x", "--data_path", str(lst), "--data_set", "UCF101", "--nb_classes", "101"])
    with pytest.raises(ValueError, match=rf"{re.escape(str(lst))}:3: label 101 out of range for --nb_classes 101"):
        run_finetuning.check_classes(args, [str(lst)])
    args.nb_classes = 51
    with pytest.raises(ValueError, match="--nb_classes 51 does not match --data_set UCF101"):
        run_finetuning.check_classes(args, [str(lst)])


# ---------------------------------------------------------------------------------------------------
# lists that used to be accepted silently or crash bare (issue 15, items 5 and 6)
# ---------------------------------------------------------------------------------------------------
def test_list_that_is_not_utf8_names_file_and_line(bad_root, tmp_path):
    from snappix.tools.check_data import main as check_data

    lst = tmp_path / "latin1.csv"
    lst.write_bytes("good.mp4 0\ncaf\u00e9.mp4 1\n".encode("latin-1"))
    with pytest.raises(ListFormatError, match=rf"{re.escape(str(lst))}:2: not UTF-8 text \(byte 0xe9"):
        read_list(lst, "cls")
    # the data doctor reports the row instead of stopping
    rc = check_data(["--data_path", str(lst), "--data_root", str(bad_root), "--format", "cls",
                     "--num_frames", str(NUM_FRAMES), "--out", str(tmp_path / "report")])
    assert rc == 1
    bad = (tmp_path / "report.bad.tsv").read_text(encoding="utf-8")
    assert "not UTF-8" in bad and ":2:" in bad


@pytest.mark.parametrize("row", ["../good.mp4 0", "/etc/passwd 0", "a/../../../etc/passwd 0"])
def test_list_path_outside_the_root_is_refused(tmp_path, row):
    root = tmp_path / "root"
    root.mkdir()
    lst = tmp_path / "train.csv"
    lst.write_text(f"x.mp4 0\n{row}\n")
    with pytest.raises(ListFormatError, match=rf"{re.escape(str(lst))}:2: .*outside --data_root.*--allow_outside_root"):
        read_list(lst, "cls", str(root))
    with pytest.raises(ListFormatError, match="outside --data_root"):
        VideoClsDataset(str(lst), str(root), mode="validation", check_missing=False)
    assert len(read_list(lst, "cls", str(root), allow_outside_root=True)) == 2


def test_list_same_file_two_labels_errors_and_duplicates_warn(tmp_path, caplog):
    lst = tmp_path / "train.csv"
    lst.write_text("a.mp4 0\nb.mp4 1\na.mp4 0\n")
    read_list(lst, "cls", str(tmp_path))
    assert f"{lst}: 1 duplicate row(s) (line 3 repeats line 1)" in caplog.text
    lst.write_text("a.mp4 0\nb.mp4 1\na.mp4 2\n")
    with pytest.raises(ListFormatError, match=rf"{re.escape(str(lst))}:3: 'a.mp4' has label 2, but label 0 at line 1"):
        read_list(lst, "cls", str(tmp_path))
