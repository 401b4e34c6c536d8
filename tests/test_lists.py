"""List files: every format, robustness (CRLF, spaces, comments, spaces in paths), malformed rows."""

import pytest

from snappix.data.lists import ListEntry, ListFormatError, check_files, parse_line, read_list, write_list


def write(tmp_path, text, name="list.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


def test_cls_list_with_crlf_repeated_spaces_comments_blank_lines_and_spaces_in_paths(tmp_path):
    p = write(tmp_path, "# header comment\r\nk400/a.mp4 3\r\n\r\nk400/b.mp4   12\r\n  my videos/c d.mp4\t7  \r\n")
    rows = read_list(p, "cls", data_root="/data")
    assert [(r.rel_path, r.label, r.line_no) for r in rows] == [
        ("k400/a.mp4", 3, 2), ("k400/b.mp4", 12, 4), ("my videos/c d.mp4", 7, 5)]
    assert rows[2].path == "/data/my videos/c d.mp4"
    assert all(r.is_video_file for r in rows)


def test_pretrain_list_video_and_rawframe_rows(tmp_path):
    p = write(tmp_path, "k710_train/x.mp4 0 -1\nssv2/frames/12 1 48\n")
    video, frames = read_list(p, "pretrain")
    assert (video.start_idx, video.total_frames, video.is_video_file, video.label) == (0, -1, True, None)
    assert (frames.start_idx, frames.total_frames, frames.is_video_file) == (1, 48, False)


def test_rawframes_and_long_lists(tmp_path):
    (r,) = read_list(write(tmp_path, "sth/123 47 5\n", "r.csv"), "rawframes")
    assert (r.rel_path, r.total_frames, r.label, r.is_video_file) == ("sth/123", 47, 5, False)
    (lv,) = read_list(write(tmp_path, "lvu/movie one.mp4 2 93.5\n", "l.csv"), "long")
    assert (lv.rel_path, lv.label, lv.duration_s) == ("lvu/movie one.mp4", 2, 93.5)


@pytest.mark.parametrize("fmt, line, words", [
    ("cls", "a.mp4", "expected 'path label'"),
    ("cls", "a.mp4 x", "field 'label' must be int"),
    ("cls", "a.mp4 1.5", "must be int"),
    ("cls", "a.mp4 -2", "label must be >= 0"),
    ("pretrain", "a.mp4 0", "expected 'path start_idx total_frames'"),
    ("pretrain", "a.mp4 0 -5", "total_frames must be -1"),
    ("rawframes", "dir 0 3", "total_frames must be >= 1"),
    ("long", "a.mp4 1 abc", "'duration_s' must be float"),
])
def test_malformed_rows_name_file_and_line(tmp_path, fmt, line, words):
    p = write(tmp_path, f"# ok\nfirst.mp4 {'1' if fmt == 'cls' else '0 -1' if fmt == 'pretrain' else '5 1' if fmt == 'rawframes' else '1 2.0'}\n{line}\n")
    with pytest.raises(ListFormatError) as err:
        read_list(p, fmt)
    assert f"{p}:3" in str(err.value) and words in str(err.value)


def test_unknown_format_and_missing_list(tmp_path):
    with pytest.raises(ValueError, match="unknown list format"):
        parse_line("a 1", "csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_list(tmp_path / "nope.csv", "cls")


def test_write_uses_lf_and_round_trips(tmp_path):
    out = tmp_path / "sub" / "out.csv"
    n = write_list(out, [("a b/c.mp4", 0, -1), ListEntry(path="x", rel_path="d.mp4", total_frames=-1)], "pretrain")
    assert n == 2
    data = out.read_bytes()
    assert b"\r" not in data and data == b"a b/c.mp4 0 -1\nd.mp4 0 -1\n"
    assert [e.rel_path for e in read_list(out, "pretrain")] == ["a b/c.mp4", "d.mp4"]
    with pytest.raises(ListFormatError):
        write_list(out, [("a.mp4", "notalabel")], "cls")
    assert out.read_bytes() == data  # a failed write leaves the old file intact


def test_check_files_reports_count_and_first_ten(tmp_path):
    (tmp_path / "ok.mp4").write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    rows = [("ok.mp4", 0, -1), ("frames", 0, 5)] + [(f"missing{i}.mp4", 0, -1) for i in range(12)]
    write_list(tmp_path / "l.csv", rows, "pretrain")
    report = check_files(read_list(tmp_path / "l.csv", "pretrain", data_root=str(tmp_path)))
    assert not report.ok and report.total == 14 and len(report.missing) == 12
    text = report.summary()
    assert "12 of 14" in text and "missing9.mp4" in text and "missing10.mp4" not in text and "2 more" in text
