"""Tests of the data doctor (snappix.tools.check_data): classification, outputs, resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import synthetic_frames, write_lossless_video
from snappix.data.lists import ListEntry
from snappix.data import check_list as check_data
from snappix.tools.check_data import check_entry, main


@pytest.fixture
def doctor_list(tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """A cls list mixing good and broken rows; returns (list, root, expected kind per name)."""
    root = tmp_path / "root"
    root.mkdir()
    write_lossless_video(root / "good_a.mp4", synthetic_frames(20, seed=1))
    write_lossless_video(root / "good_b.mp4", synthetic_frames(24, seed=2))
    write_lossless_video(root / "one_frame.mp4", synthetic_frames(1, seed=3))
    good_bytes = (root / "good_b.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good_bytes[: len(good_bytes) // 3])
    (root / "zero.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(os.urandom(4096))
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    (root / "a_dir.mp4").mkdir()
    expected = {  # name -> bad kind, or "ok" / "short"
        "good_a.mp4": "ok",
        "good_b.mp4": "ok",
        "one_frame.mp4": "short",
        "truncated.mp4": "bad",
        "zero.mp4": "empty",
        "random.mp4": "bad",
        "text.mp4": "bad",
        "missing.mp4": "missing",
        "a_dir.mp4": "not_a_file",
    }
    lines = ["# a comment", ""]
    for i, name in enumerate(expected):
        lines.append(f"{name} {i}")
    lines.insert(5, "broken_row.mp4 notalabel")  # malformed: line 6
    lst = tmp_path / "train.csv"
    lst.write_text("\r\n".join(lines) + "\r\n")  # CRLF input, \n output
    return lst, root, expected


def _read_bad(prefix: Path) -> dict[str, str]:
    out = {}
    for line in Path(f"{prefix}.bad.tsv").read_text().splitlines():
        path, reason = line.split("\t")
        out[path] = reason
    return out


def test_main_classifies_every_row_and_resumes(doctor_list, tmp_path, capsys, monkeypatch):
    lst, root, expected = doctor_list
    prefix = tmp_path / "out" / "train"
    argv = ["--data_path", str(lst), "--data_root", str(root), "--format", "cls", "--workers", "2",
            "--deep", "--num_frames", "16", "--out", str(prefix), "--no_progress"]
    assert main(argv) == 1
    summary = capsys.readouterr().out
    assert "files/s" in summary and "short 1" in summary

    clean_bytes = Path(f"{prefix}.clean").read_bytes()
    assert b"\r" not in clean_bytes
    clean = clean_bytes.decode().splitlines()
    ok_names = [n for n, k in expected.items() if k in ("ok", "short")]
    assert clean == [f"{n} {list(expected).index(n)}" for n in ok_names]

    bad = _read_bad(prefix)
    bad_names = {n: k for n, k in expected.items() if k not in ("ok", "short")}
    assert len(bad) == len(bad_names) + 1  # + the malformed row
    for name, kind in bad_names.items():
        reason = bad[os.path.join(str(root), name)]
        if kind != "bad":
            assert reason.startswith(f"{kind}:"), (name, reason)
        else:
            assert check_data.reason_kind(reason) in ("open", "frames", "decode"), (name, reason)
    malformed = [r for p, r in bad.items() if p.startswith("broken_row.mp4")]
    assert len(malformed) == 1 and malformed[0].startswith("malformed:") and f"{lst}:6" in malformed[0]

    progress = Path(f"{prefix}.progress.tsv").read_text().splitlines()
    assert len(progress) == 1 + len(expected) + 1  # header + every row once
    statuses = {int(l.split("\t")[0]): l.split("\t")[1] for l in progress[1:]}
    assert sorted(statuses) == list(range(3, 3 + len(expected) + 1))

    # Second run: nothing re-checked, same outputs, same progress file.
    def boom(task):
        raise AssertionError(f"row re-checked on resume: {task[0]}")

    monkeypatch.setattr(check_data, "_check_task", boom)
    assert main(argv[:7] + ["1"] + argv[8:]) == 1  # --workers 1: in-process, so the patch applies
    assert "0 checked now" in capsys.readouterr().out
    assert Path(f"{prefix}.progress.tsv").read_text().splitlines() == progress
    assert Path(f"{prefix}.clean").read_text().splitlines() == clean
    assert _read_bad(prefix) == bad


def test_resume_after_partial_progress(doctor_list, tmp_path):
    lst, root, expected = doctor_list
    prefix = tmp_path / "p"
    argv = ["--data_path", str(lst), "--data_root", str(root), "--workers", "1", "--out", str(prefix),
            "--no_progress"]
    assert main(argv) == 1
    prog = Path(f"{prefix}.progress.tsv")
    lines = prog.read_text().splitlines()
    prog.write_text("\n".join(lines[:4]) + "\n" + lines[4][:3])  # a crash mid-write
    assert main(argv) == 1
    again = prog.read_text().splitlines()
    done = {int(l.split("\t")[0]) for l in again[1:] if l.count("\t") == 2}
    assert done == {int(l.split("\t")[0]) for l in lines[1:]}
    assert Path(f"{prefix}.clean").read_text().splitlines() == [
        f"{n} {i}" for i, (n, k) in enumerate(expected.items()) if k in ("ok", "short")]
    # Different options (--deep) start afresh instead of trusting the shallow results.
    assert main(argv + ["--deep"]) == 1
    assert len(prog.read_text().splitlines()) == len(lines)


def test_check_entry_frame_folder_and_all_good(tmp_path):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(synthetic_frames(5, 16, 16)):
        Image.fromarray(f).save(folder / f"img_{i:05d}.png")
    entry = ListEntry(path=str(folder), rel_path="frames", total_frames=5, label=0)
    assert check_entry(entry, deep=True, num_frames=4) == ("ok", "")
    assert check_entry(entry, deep=True, num_frames=8)[0] == "short"
    not_dir = ListEntry(path=str(folder / "img_00000.png"), rel_path="x", total_frames=5, label=0)
    assert check_entry(not_dir, deep=False, num_frames=4)[1].startswith("not_a_folder:")

    write_lossless_video(tmp_path / "v.mp4", synthetic_frames(20))
    lst = tmp_path / "l.txt"
    lst.write_text("v.mp4 0 -1\n")
    assert main(["--data_path", str(lst), "--data_root", str(tmp_path), "--format", "pretrain",
                 "--workers", "1", "--deep", "--no_progress"]) == 0
    assert Path(f"{lst}.clean").read_text() == "v.mp4 0 -1\n"
    assert Path(f"{lst}.bad.tsv").read_text() == ""


def test_deep_finds_truncated_tail(tmp_path):
    """A faststart mp4 (index first) cut in half opens fine; only --deep decoding finds the lost tail."""
    import av

    write_lossless_video(tmp_path / "src.mp4", synthetic_frames(60))
    dst = tmp_path / "faststart.mp4"
    with av.open(str(tmp_path / "src.mp4")) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    entry = ListEntry(path=str(dst), rel_path="faststart.mp4", label=0)
    assert check_entry(entry, deep=False, num_frames=16) == ("ok", "")
    status, reason = check_entry(entry, deep=True, num_frames=16)
    assert status == "bad" and check_data.reason_kind(reason) in ("decode", "open"), reason


@pytest.mark.skipif(__import__("multiprocessing").get_start_method() != "fork",
                    reason="the patched checker reaches the workers only with the fork start method")
def test_worker_crash_marks_only_the_culprit(doctor_list, tmp_path, monkeypatch):
    lst, root, expected = doctor_list
    real = check_data.check_entry

    def crashing(entry, *args, **kwargs):
        if entry.path.endswith("good_b.mp4"):
            os._exit(11)  # what a decoder segfault looks like to the pool
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(check_data, "check_entry", crashing)
    prefix = tmp_path / "crash"
    assert main(["--data_path", str(lst), "--data_root", str(root), "--workers", "2", "--out", str(prefix),
                 "--no_progress"]) == 1
    bad = _read_bad(prefix)
    assert bad[os.path.join(str(root), "good_b.mp4")].startswith("crash:")
    assert len(bad) == sum(k not in ("ok", "short") for k in expected.values()) + 2  # + malformed, crash
    assert Path(f"{prefix}.clean").read_text().splitlines() == ["good_a.mp4 0", "one_frame.mp4 2"]
