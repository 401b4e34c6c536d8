"""``--precision auto``: bf16 only where the device computes it natively, else fp32; said once at start-up."""

import logging

import pytest
import torch

from snappix.engine import native_bf16 as NB
from snappix.engine import precision as P
from snappix.engine.args import build_parser, parse_args

AVX2_LAPTOP = {"fpu", "sse2", "avx", "avx2", "fma"}
ICE_LAKE = AVX2_LAPTOP | {"avx512f", "avx512bw", "avx512_vnni"}
SAPPHIRE_RAPIDS = ICE_LAKE | {"avx512_bf16", "amx_tile", "amx_bf16"}
ZEN4 = ICE_LAKE | {"avx512_bf16"}


@pytest.mark.parametrize("flags,native", [(AVX2_LAPTOP, False), (ICE_LAKE, False), (SAPPHIRE_RAPIDS, True),
                                          (ZEN4, True)])
def test_cpu_flags_decide(flags, native):
    verdict, reason = NB.cpu_native_bf16(flags, env={}, capability="AVX512")
    assert verdict is native and reason


def test_avx2_emulation_turns_native_bf16_off():
    """ATEN_CPU_CAPABILITY=avx2 / ONEDNN_MAX_CPU_ISA=AVX2 emulate a laptop on a bf16 server."""
    assert NB.cpu_native_bf16(SAPPHIRE_RAPIDS, env={"ATEN_CPU_CAPABILITY": "avx2"}, capability="AVX2")[0] is False
    assert NB.cpu_native_bf16(SAPPHIRE_RAPIDS, env={"ONEDNN_MAX_CPU_ISA": "AVX2"}, capability="AVX512")[0] is False
    assert NB.cpu_native_bf16(SAPPHIRE_RAPIDS, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"},
                              capability="AVX512")[0] is True


def test_unknown_cpus_fall_back_to_a_timing(monkeypatch):
    assert NB.cpu_native_bf16(None, env={})[0] is None
    assert NB.cpu_native_bf16({"fp", "asimd", "bf16"}, env={})[0] is None  # aarch64: measured, not guessed
    monkeypatch.setattr(NB, "cpu_flags", lambda path="/proc/cpuinfo": {"fp", "asimd"})
    monkeypatch.setattr(NB, "cpu_bf16_timing", lambda reps=3: (True, "timed"))
    assert NB.native_bf16("cpu") == (True, "timed")


def test_cpu_flags_reads_proc_cpuinfo_format(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert NB.cpu_flags(str(f)) == {"fpu", "avx2", "amx_bf16"}
    assert NB.cpu_flags(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_resolves_and_says_why(monkeypatch, caplog, native, expected):
    monkeypatch.setattr(P, "native_bf16", lambda device: (native, "mocked reason"))
    monkeypatch.setattr(P, "_ANNOUNCED", set())
    with caplog.at_level(logging.INFO, logger="snappix.engine.precision"):
        assert P.resolve_precision("auto", "cpu") == expected
        assert P.resolve_precision("auto", "cpu") == expected
    said = [r.getMessage() for r in caplog.records if "--precision auto" in r.getMessage()]
    assert said == [f"--precision auto -> {expected}: mocked reason"]  # once, with the reason
    assert P.resolve_precision("fp32", "cpu") == "fp32" and P.resolve_precision("bf16", "cpu") == "bf16"


def test_auto_is_the_default_and_autocast_accepts_it(monkeypatch):
    args = parse_args(build_parser(groups=("precision",)), [])
    assert args.precision == "auto"
    monkeypatch.setattr(P, "native_bf16", lambda device: (False, "no bf16"))
    with P.autocast("cpu", "auto"):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(P, "native_bf16", lambda device: (True, "bf16 units"))
    with P.autocast("cpu", "auto"):
        assert torch.is_autocast_enabled("cpu")
