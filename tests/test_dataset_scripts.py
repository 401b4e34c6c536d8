"""Tests of the list-building scripts in dataset/ (tiny hand-made annotation files, empty
placeholder videos, tmp_path only)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snappix.data.lists import read_list

DATASET_DIR = Path(__file__).resolve().parents[1] / "dataset"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"snappix_dataset_{name}", DATASET_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ssv2 = _load("ssv2_list_process")
combine = _load("combine_pretrained")
copy_k710 = _load("copy_k710_data")
ucf_hmdb = _load("build_ucf_hmdb_lists")
kinetics = _load("kinetics_list")


def write(path: Path, text: str, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes(data.encode("utf-8"))
    return path


def touch(directory: Path, *names: str) -> None:
    for name in names:
        p = directory / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def lines_of(path: Path) -> list[str]:
    data = path.read_bytes()
    assert b"\r" not in data, f"{path} has CR characters"
    assert data == b"" or data.endswith(b"\n")
    return data.decode("utf-8").splitlines()


# ------------------------------------------------------------------------------------------- SSV2


def test_ssv2_text_list_crlf_and_spaces(tmp_path, capsys):
    src = write(tmp_path / "in.csv",
                "/mnt/my data/ssv2/74225.webm   140\n"
                "\n"
                "videos/1234.webm\t48  3\n"
                "rawframes/99 30 0\n", crlf=True)
    out = tmp_path / "out" / "val.csv"
    assert ssv2.main([str(src), str(out)]) == 0
    assert lines_of(out) == ["ssv2_processed/74225.mp4 140", "ssv2_processed/1234.mp4 3",
                             "ssv2_processed/99.mp4 0"]
    entries = read_list(out, "cls")
    assert [(e.rel_path, e.label) for e in entries] == [
        ("ssv2_processed/74225.mp4", 140), ("ssv2_processed/1234.mp4", 3), ("ssv2_processed/99.mp4", 0)]
    assert "wrote 3 rows" in capsys.readouterr().out


def test_ssv2_pretrained_and_prefix(tmp_path):
    src = write(tmp_path / "in.csv", "a/74225.webm 140\na/5.webm 2\n")
    out = tmp_path / "recon.csv"
    assert ssv2.main([str(src), str(out), "--pretrained", "--prefix", "ssv2"]) == 0
    assert lines_of(out) == ["ssv2/74225.mp4 0 -1", "ssv2/5.mp4 0 -1"]
    assert all(e.is_video_file for e in read_list(out, "pretrain"))


def test_ssv2_malformed_row_names_line(tmp_path, capsys):
    src = write(tmp_path / "in.csv", "a/1.webm 3\na/2.webm 4\na/3.webm abc\n", crlf=True)
    assert ssv2.main([str(src), str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3" in err and "label" in err
    assert not (tmp_path / "out.csv").exists()
    src = write(tmp_path / "in2.csv", "a/1.webm 3\njust_a_path\n")
    assert ssv2.main([str(src), str(tmp_path / "out.csv")]) == 2
    assert f"{src}:2" in capsys.readouterr().err


def test_ssv2_official_json(tmp_path, capsys):
    labels = write(tmp_path / "something-something-v2-labels.json", json.dumps({
        "Approaching something with your camera": "0",
        "Holding something next to something": "1",
        "Putting something on a surface": "2"}))
    ann = write(tmp_path / "something-something-v2-validation.json", json.dumps([
        {"id": "74225", "label": "holding a pen next to a cup",
         "template": "Holding [something] next to [something]", "placeholders": ["a pen", "a cup"]},
        {"id": "116154", "label": "putting a cup on a surface",
         "template": "Putting [something] on a surface", "placeholders": ["a cup"]},
        {"id": 3, "template": "Approaching [something] with your camera"}]))
    out = tmp_path / "val.csv"
    assert ssv2.main([str(ann), str(out), "--labels", str(labels)]) == 0
    assert lines_of(out) == ["ssv2_processed/74225.mp4 1", "ssv2_processed/116154.mp4 2",
                             "ssv2_processed/3.mp4 0"]
    out2 = tmp_path / "val_recon.csv"
    assert ssv2.main([str(ann), str(out2), "--pretrained"]) == 0
    assert lines_of(out2) == ["ssv2_processed/74225.mp4 0 -1", "ssv2_processed/116154.mp4 0 -1",
                              "ssv2_processed/3.mp4 0 -1"]
    # a JSON without --labels, and an unknown template, are clear errors
    assert ssv2.main([str(ann), str(tmp_path / "x.csv")]) == 2
    assert "--labels" in capsys.readouterr().err
    bad = write(tmp_path / "bad.json", json.dumps([{"id": "1", "template": "Tearing [something]"}]))
    assert ssv2.main([str(bad), str(tmp_path / "x.csv"), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert "entry #0" in err and "Tearing" in err


# ------------------------------------------------------------------------------ combine_pretrained


def _kinetics_dirs(root: Path) -> dict[str, Path]:
    dirs = {k: root / f"{k}_processed" for k in ("k400", "k600", "k700", "ssv2")}
    for d in dirs.values():
        d.mkdir(parents=True)
    return dirs


def test_combine_pretrained(tmp_path, capsys):
    d = _kinetics_dirs(tmp_path / "mm")
    touch(d["k400"], "aaa_000001_000011.mp4", "bbb_000002_000012.mp4")
    touch(d["k600"], "ccc_000003_000013.mp4", "aaa_000001_000011.mp4")
    touch(d["k700"], "ddd_000004_000014.mp4")
    touch(d["ssv2"], "74225.mp4", "5.mp4")
    k710 = write(tmp_path / "k710_train.csv",
                 "k400/train/aaa_000001_000011.mp4 0\n"
                 "k400/train/air drumming/bbb_000002_000012.mp4  7\n"  # space in the path
                 "k600/train/ccc_000003_000013.mp4 12\n"
                 "k600/train/aaa_000001_000011.mp4 0\n"      # same name as the K400 one
                 "k700/train/ddd_000004_000014.mkv 700\n"    # processed as <stem>.mp4
                 "k700/train/eee_000005_000015.mp4 3\n", crlf=True)  # missing
    ssv2_list = write(tmp_path / "ssv2_train.csv",
                      "ssv2_processed/74225.mp4 140\n"
                      "/raw/ssv2/5.webm 50 2\n"
                      "/raw/ssv2/6.webm 2\n", crlf=True)  # missing
    outdir = tmp_path / "out"
    args = [str(k710), str(ssv2_list), str(d["k400"]), str(d["k600"]), str(d["k700"]), str(d["ssv2"]),
            str(outdir)]
    assert combine.main(args) == 0
    out = outdir / "pretrained_combine.csv"
    assert lines_of(out) == ["k710_train/aaa_000001_000011.mp4 0 -1",
                             "k710_train/bbb_000002_000012.mp4 0 -1",
                             "k710_train/ccc_000003_000013.mp4 0 -1",
                             "k710_train/ddd_000004_000014.mp4 0 -1",
                             "ssv2_processed/74225.mp4 0 -1",
                             "ssv2_processed/5.mp4 0 -1"]
    assert len(read_list(out, "pretrain")) == 6
    log = lines_of(outdir / "gen_list_failed.log")
    assert len(log) == 3
    assert log[0].startswith("duplicate\tk710_train/aaa_000001_000011.mp4\t") and f"{k710}:4" in log[0]
    assert log[1] == f"missing\t{d['k700'] / 'eee_000005_000015.mp4'}\t{k710}:6"
    assert log[2] == f"missing\t{d['ssv2'] / '6.mp4'}\t{ssv2_list}:3"
    printed = capsys.readouterr().out
    assert "wrote 6 rows" in printed and "3 skipped rows" in printed


def test_combine_pretrained_malformed_rows(tmp_path, capsys):
    d = _kinetics_dirs(tmp_path / "mm")
    ssv2_list = write(tmp_path / "ssv2.csv", "1.webm 3\n")
    base = [str(d["k400"]), str(d["k600"]), str(d["k700"]), str(d["ssv2"]), str(tmp_path / "out")]
    k710 = write(tmp_path / "k710.csv", "k400/a.mp4 0\nkinetics/b.mp4 1\n")
    assert combine.main([str(k710), str(ssv2_list), *base]) == 2
    err = capsys.readouterr().err
    assert f"{k710}:2" in err and "Kinetics version" in err
    k710 = write(tmp_path / "k710b.csv", "k400/a.mp4 zero\n")
    assert combine.main([str(k710), str(ssv2_list), *base]) == 2
    assert f"{k710}:1" in capsys.readouterr().err
    assert not (tmp_path / "out" / "pretrained_combine.csv").exists()


# ------------------------------------------------------------------------------------- copy_k710


def _k710_setup(root: Path):
    d = {k: root / f"{k}_processed" for k in ("k400", "k600", "k700")}
    touch(d["k400"], "a.mp4", "b.mp4")
    (d["k400"] / "a.mp4").write_bytes(b"k400-a")
    touch(d["k600"], "c.mp4", "a.mp4")
    (d["k600"] / "a.mp4").write_bytes(b"k600-a, other content")
    touch(d["k700"], "e.mp4")
    csv = write(root / "k710 train.csv",
                "k400/train/a.mp4 0\n"
                "k400/train/b.mp4 1\n"
                "k400/train/b.mp4 1\n"          # repeated row
                "k400/train/missing.mp4 2\n"
                "k600/train/c.mp4 3\n"
                "k600/train/a.mp4 0\n"          # taken by K400's a.mp4
                "k700/train/e.mp4 4\n", crlf=True)
    return d, csv


def test_copy_k710_data_copy_resume_and_logs(tmp_path, capsys):
    d, csv = _k710_setup(tmp_path)
    out = tmp_path / "mm"
    args = ["--csv", str(csv), "--output", str(out), "--quiet"]
    assert copy_k710.main([*args, "--ktype", "k400", "--input", str(d["k400"])]) == 0
    assert sorted(os.listdir(out / "k710_train")) == ["a.mp4", "b.mp4"]
    assert (out / "k710_train" / "a.mp4").read_bytes() == b"k400-a"
    assert "2 copied" in capsys.readouterr().out
    assert lines_of(out / "copy_failed.txt") == [
        f"k400\tmissing\t{d['k400'] / 'missing.mp4'}\t{csv}:4"]
    dup = lines_of(out / "copy_duplicated.txt")
    assert len(dup) == 1 and dup[0].startswith("k400\trepeated in list") and dup[0].endswith(f"{csv}:3")

    assert copy_k710.main([*args, "--ktype", "k600", "--input", str(d["k600"])]) == 0
    assert sorted(os.listdir(out / "k710_train")) == ["a.mp4", "b.mp4", "c.mp4"]
    assert (out / "k710_train" / "a.mp4").read_bytes() == b"k400-a"  # not overwritten
    dup = lines_of(out / "copy_duplicated.txt")
    assert len(dup) == 2 and dup[1] == (f"k600\texists as a different file\t"
                                        f"{out / 'k710_train' / 'a.mp4'}\t{csv}:6")
    capsys.readouterr()

    # resumable: a second K400 run copies nothing and keeps the K600 log lines
    assert copy_k710.main([*args, "--ktype", "k400", "--input", str(d["k400"])]) == 0
    assert "0 copied, 0 hard-linked, 0 symlinked, 2 already present" in capsys.readouterr().out
    assert len(lines_of(out / "copy_duplicated.txt")) == 2
    assert len(lines_of(out / "copy_failed.txt")) == 1


@pytest.mark.parametrize("link", ["hard", "symlink"])
def test_copy_k710_data_link(tmp_path, link):
    d, csv = _k710_setup(tmp_path)
    out = tmp_path / "mm"
    argv = ["--csv", str(csv), "--ktype", "k700", "--input", str(d["k700"]), "--output", str(out),
            "--quiet", "--link"] + ([] if link == "hard" else ["symlink"])
    assert copy_k710.main(argv) == 0
    dst = out / "k710_train" / "e.mp4"
    assert os.path.samefile(dst, d["k700"] / "e.mp4")
    assert dst.is_symlink() == (link == "symlink")
    assert copy_k710.main(argv) == 0  # already present


def test_copy_k710_data_wrong_input_and_bad_row(tmp_path, capsys):
    d, csv = _k710_setup(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert copy_k710.main(["--csv", str(csv), "--ktype", "k400", "--input", str(empty),
                           "--output", str(tmp_path / "mm"), "--quiet"]) == 1
    assert "wrong --input" in capsys.readouterr().err
    bad = write(tmp_path / "bad.csv", "k400/a.mp4 0\nk400/b.mp4 1 2 3\n")
    assert copy_k710.main(["--csv", str(bad), "--ktype", "k400", "--input", str(d["k400"]),
                           "--output", str(tmp_path / "mm"), "--quiet"]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_copy_k710_sh_with_spaces_in_paths(tmp_path):
    root = tmp_path / "my data" / "mm dataset"
    d, csv = _k710_setup(root)
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(DATASET_DIR / "copy_k710.sh"), str(csv), str(root), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(root / "k710_train")) == ["a.mp4", "b.mp4", "c.mp4", "e.mp4"]
    failed = lines_of(root / "copy_failed.txt")
    assert failed == [f"k400\tmissing\t{d['k400'] / 'missing.mp4'}\t{csv}:4"]
    dup = lines_of(root / "copy_duplicated.txt")
    assert [ln.split("\t")[0] for ln in dup] == ["k400", "k600"]
    for k in ("k400", "k600", "k700"):
        assert f"== {k}" in proc.stdout

    # env-var form, with an output folder whose name has a space too
    out = tmp_path / "other out"
    env.update(K710_CSV=str(csv), DATA_ROOT=str(root), OUTPUT_DIR=str(out))
    proc = subprocess.run(["bash", str(DATASET_DIR / "copy_k710.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(out / "k710_train")) == ["a.mp4", "b.mp4", "c.mp4", "e.mp4"]

    # missing arguments: a clear error, non-zero status
    env.pop("K710_CSV")
    proc = subprocess.run(["bash", str(DATASET_DIR / "copy_k710.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "K710_CSV" in proc.stderr


# --------------------------------------------------------------------------------- UCF101 / HMDB51


def _ucf_splits(root: Path) -> Path:
    d = root / "ucfTrainTestlist"
    write(d / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n3 HandstandPushups\n", crlf=True)
    write(d / "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "Archery/v_Archery_g08_c02.avi   2\n"
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\n", crlf=True)
    write(d / "testlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
          "Archery/v_Archery_g01_c01.avi\n"
          "HandStandPushups/v_HandStandPushups_g01_c01.avi\n", crlf=True)
    return d


def test_ucf101_lists(tmp_path, capsys):
    splits = _ucf_splits(tmp_path)
    out = tmp_path / "UCF"
    assert ucf_hmdb.main(["--dataset", "ucf101", "--splits_dir", str(splits), "--out_dir", str(out)]) == 0
    assert lines_of(out / "train.csv") == ["ucf/v_ApplyEyeMakeup_g08_c01.mp4 0",
                                           "ucf/v_Archery_g08_c02.mp4 1",
                                           "ucf/v_HandStandPushups_g08_c01.mp4 2"]
    assert lines_of(out / "val.csv") == ["ucf/v_ApplyEyeMakeup_g01_c01.mp4 0",
                                         "ucf/v_Archery_g01_c01.mp4 1",
                                         "ucf/v_HandStandPushups_g01_c01.mp4 2"]
    assert lines_of(out / "classes.txt") == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert [e.label for e in read_list(out / "val.csv", "cls")] == [0, 1, 2]
    printed = capsys.readouterr()
    assert "wrote 3 rows" in printed.out and "3 classes found, ucf101 has 101" in printed.err

    # the parent folder of ucfTrainTestlist works too; --keep_dirs, --prefix, --ext
    out2 = tmp_path / "UCF2"
    assert ucf_hmdb.main(["--dataset", "ucf101", "--splits_dir", str(tmp_path), "--out_dir", str(out2),
                          "--keep_dirs", "--prefix", "UCF-101", "--ext", ".avi"]) == 0
    assert lines_of(out2 / "train.csv")[0] == "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0"


def test_ucf101_bad_rows_name_line(tmp_path, capsys):
    splits = _ucf_splits(tmp_path)
    write(splits / "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c02.avi 1\n", crlf=True)
    argv = ["--dataset", "ucf101", "--splits_dir", str(splits), "--out_dir", str(tmp_path / "o")]
    assert ucf_hmdb.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{splits / 'trainlist01.txt'}:2" in err and "Archery" in err
    write(splits / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n")
    assert ucf_hmdb.main(argv) == 2
    assert f"{splits / 'trainlist01.txt'}:1" in capsys.readouterr().err
    write(splits / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    write(splits / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nDiving/v_Diving_g01_c01.avi\n")
    assert ucf_hmdb.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{splits / 'testlist01.txt'}:2" in err and "Diving" in err


def _hmdb_splits(root: Path) -> Path:
    d = root / "testTrainMulti_7030_splits"
    write(d / "wave_test_split1.txt", "w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n", crlf=True)
    write(d / "brush_hair_test_split1.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1\nb2.avi  2\n",
          crlf=True)
    write(d / "brush_hair_test_split2.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2\nb2.avi 1\n")
    write(d / "wave_test_split2.txt", "w1.avi 2\nw2.avi 1\nw3.avi 1\n")
    return d


def test_hmdb51_lists(tmp_path):
    splits = _hmdb_splits(tmp_path)
    out = tmp_path / "HMDB"
    assert ucf_hmdb.main(["--dataset", "hmdb51", "--splits_dir", str(splits), "--out_dir", str(out)]) == 0
    assert lines_of(out / "train.csv") == ["hmdb/April_09_brush_hair_u_nm_np1_ba_goo_0.mp4 0",
                                           "hmdb/w1.mp4 1"]
    assert lines_of(out / "val.csv") == ["hmdb/b2.mp4 0", "hmdb/w2.mp4 1"]
    assert lines_of(out / "classes.txt") == ["brush_hair", "wave"]
    out2 = tmp_path / "HMDB2"
    assert ucf_hmdb.main(["--dataset", "hmdb51", "--splits_dir", str(splits), "--out_dir", str(out2),
                          "--split", "2", "--keep_dirs"]) == 0
    assert lines_of(out2 / "train.csv") == ["hmdb/brush_hair/b2.mp4 0", "hmdb/wave/w2.mp4 1",
                                            "hmdb/wave/w3.mp4 1"]
    assert len(read_list(out2 / "val.csv", "cls")) == 2


def test_hmdb51_bad_flag_names_line(tmp_path, capsys):
    splits = _hmdb_splits(tmp_path)
    write(splits / "wave_test_split1.txt", "w1.avi 1\nw2.avi 3\n")
    assert ucf_hmdb.main(["--dataset", "hmdb51", "--splits_dir", str(splits),
                          "--out_dir", str(tmp_path / "o")]) == 2
    assert f"{splits / 'wave_test_split1.txt'}:2" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- Kinetics


KINETICS_CSV = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    "abseiling,--07WQ2iBlw,1,11,train,0\n"
    "\"passing American football (in game)\",-0ctCoR0bK0,5,15,train,0\n"
    "air drumming,jf7RDuUTrsQ,26,36,train,0\n"
    "abseiling,zzzMissing1,0,10,train,0\n"
)


def test_kinetics_list(tmp_path, capsys):
    videos = tmp_path / "k400"
    touch(videos, "--07WQ2iBlw_000001_000011.mp4", "-0ctCoR0bK0_000005_000015.mp4", "jf7RDuUTrsQ.mp4",
          "unrelated.txt")
    ann = write(tmp_path / "annotations" / "train.csv", KINETICS_CSV, crlf=True)
    out = tmp_path / "lists" / "train.csv"
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(out)]) == 0
    assert lines_of(out) == ["--07WQ2iBlw_000001_000011.mp4 0",  # relative to --video_dir = --data_root
                             "-0ctCoR0bK0_000005_000015.mp4 2",
                             "jf7RDuUTrsQ.mp4 1"]
    assert [e.label for e in read_list(out, "cls")] == [0, 2, 1]
    assert lines_of(tmp_path / "lists" / "classes.txt") == [
        "abseiling", "air drumming", "passing American football (in game)"]
    assert lines_of(Path(str(out) + ".missing.txt")) == [
        f"zzzMissing1_000000_000010.mp4\tabseiling\t{ann}:5"]
    printed = capsys.readouterr().out
    assert "wrote 3 rows" in printed and "1 missing" in printed and "4 annotated clips, 3 classes" in printed
    assert f"--data_root {videos}" in printed

    # val list with the train classes; class sub-folders are found too
    val_videos = tmp_path / "k400_val"
    touch(val_videos, "air drumming/abc_000000_000010.mp4")
    val = write(tmp_path / "annotations" / "validate.csv",
                "label,youtube_id,time_start,time_end,split\nair drumming,abc,0,10,val\n")
    out_val = tmp_path / "lists" / "val.csv"
    assert kinetics.main(["--csv", str(val), "--video_dir", str(val_videos), "--out", str(out_val),
                          "--classes", str(tmp_path / "lists" / "classes.txt"), "--prefix", "k400_val"]) == 0
    assert lines_of(out_val) == ["k400_val/air drumming/abc_000000_000010.mp4 1"]
    assert read_list(out_val, "cls")[0].rel_path == "k400_val/air drumming/abc_000000_000010.mp4"

    # without --classes, a different class set does not silently overwrite classes.txt
    assert kinetics.main(["--csv", str(val), "--video_dir", str(val_videos), "--out", str(out_val)]) == 2
    assert "--classes" in capsys.readouterr().err


def test_kinetics_list_malformed(tmp_path, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    ann = write(tmp_path / "train.csv",
                "label,youtube_id,time_start,time_end,split\nabseiling,a,1,11,train\nabseiling,b,x,11,train\n",
                crlf=True)
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{ann}:3" in err and "time_start" in err
    ann = write(tmp_path / "test.csv", "youtube_id,time_start,time_end,split\na,1,11,test\n")
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(tmp_path / "o.csv")]) == 2
    assert "label" in capsys.readouterr().err
    ann = write(tmp_path / "short.csv", "label,youtube_id,time_start,time_end,split\nabseiling,a,1,11\n")
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(tmp_path / "o.csv")]) == 2
    assert f"{ann}:2" in capsys.readouterr().err
    classes = write(tmp_path / "classes.txt", "air drumming\n")
    ann = write(tmp_path / "ok.csv", "label,youtube_id,time_start,time_end,split\nabseiling,a,1,11,train\n")
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(tmp_path / "o.csv"),
                          "--classes", str(classes)]) == 2
    err = capsys.readouterr().err
    assert f"{ann}:2" in err and "abseiling" in err


def test_kinetics_path_label_csv_round_trip(tmp_path, capsys):
    """The field's 'path,label' CSV, refused by the list reader with a pointer to the converter, converts
    into a list that reads with the printed --data_root and passes check_data."""
    from conftest import synthetic_frames, write_lossless_video
    from snappix.data.lists import ListFormatError
    from snappix.tools import check_data

    videos = tmp_path / "data" / "k400"
    for i, rel in enumerate(["train/abseiling/a1.mp4", "train/air drumming/b 2.mp4", "c3.mp4", "d4.mp4"]):
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        write_lossless_video(videos / rel, synthetic_frames(20, height=32, width=32, seed=i))
    (tmp_path / "outside.mp4").write_bytes(b"")
    csv_text = ("path,label\n"
                "train/abseiling/a1.mp4,abseiling\n"
                "train/air drumming/b 2.mp4,air drumming\n"
                "elsewhere/zumba/c3.avi,zumba\n"          # preprocessed flat: found as c3.mp4 by name
                f"{videos / 'd4.mp4'},abseiling\n"         # absolute, below --video_dir
                "train/abseiling/a1.mp4,abseiling\n"       # repeated row
                "../../outside.mp4,zumba\n"               # leaves --video_dir: not listed as written
                "gone/missing.mp4,zumba\n")
    ann = write(tmp_path / "k400_train.csv", csv_text, crlf=True)
    with pytest.raises(ListFormatError) as err:
        read_list(ann, "cls")
    assert str(err.value).startswith(f"{ann}:1:") and "python dataset/kinetics_list.py --csv" in str(err.value)

    out = tmp_path / "lists" / "train.txt"
    assert kinetics.main(["--csv", str(ann), "--video_dir", str(videos), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert lines_of(out) == ["train/abseiling/a1.mp4 0", "train/air drumming/b 2.mp4 1", "c3.mp4 2", "d4.mp4 0"]
    assert lines_of(tmp_path / "lists" / "classes.txt") == ["abseiling", "air drumming", "zumba"]
    assert [line.split("\t")[0] for line in lines_of(Path(f"{out}.missing.txt"))] == [
        "../../outside.mp4", "gone/missing.mp4"]
    assert "wrote 4 rows" in printed and "2 missing" in printed and "1 repeated" in printed, printed
    root = printed.split("--data_root ")[1].split()[0]
    assert root == str(videos)
    entries = read_list(out, "cls", root)
    assert [(e.rel_path, e.label) for e in entries] == [
        ("train/abseiling/a1.mp4", 0), ("train/air drumming/b 2.mp4", 1), ("c3.mp4", 2), ("d4.mp4", 0)]
    assert all(os.path.isfile(e.path) for e in entries)
    assert check_data.main(["--data_path", str(out), "--data_root", root, "--workers", "1", "--no_progress",
                            "--out", str(tmp_path / "doctor" / "train")]) == 0

    # whole-number labels are the indices (checked against --classes); a path gets one label only
    idx = write(tmp_path / "idx.csv", "path,label\nc3.mp4,2\ntrain/abseiling/a1.mp4,0\n")
    out_idx = tmp_path / "lists" / "idx.txt"
    assert kinetics.main(["--csv", str(idx), "--video_dir", str(videos), "--out", str(out_idx),
                          "--classes", str(tmp_path / "lists" / "classes.txt")]) == 0
    assert lines_of(out_idx) == ["c3.mp4 2", "train/abseiling/a1.mp4 0"]
    bad = write(tmp_path / "bad.csv", "path,label\nc3.mp4,3\n")
    assert kinetics.main(["--csv", str(bad), "--video_dir", str(videos), "--out", str(out_idx),
                          "--classes", str(tmp_path / "lists" / "classes.txt")]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    conflict = write(tmp_path / "conflict.csv", "path,label\nc3.mp4,zumba\nc3.mp4,abseiling\n")
    assert kinetics.main(["--csv", str(conflict), "--video_dir", str(videos), "--out", str(out_idx),
                          "--classes", str(tmp_path / "lists" / "classes.txt")]) == 2
    err = capsys.readouterr().err
    assert f"{conflict}:3" in err and f"{conflict}:2" in err, err


# ------------------------------------------------------------------------------------------ CLIs


@pytest.mark.parametrize("script", ["ssv2_list_process", "combine_pretrained", "copy_k710_data",
                                    "build_ucf_hmdb_lists", "kinetics_list"])
def test_scripts_run_standalone_with_help(script):
    proc = subprocess.run([sys.executable, str(DATASET_DIR / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=str(DATASET_DIR.parent.parent))
    assert proc.returncode == 0, proc.stderr
    assert "Usage example" in proc.stdout
