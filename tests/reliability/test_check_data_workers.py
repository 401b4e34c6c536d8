"""``check_data --workers N``: the worker processes exit when the parent is killed.

Before, a SIGKILLed ``check_data`` left its workers running (re-parented, still decoding 100 s later).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.fault

#: check_data whose row checks hang (each worker writes its pid, then sleeps), run on a 4-row list
_DRIVER = textwrap.dedent("""
    import os, sys, time
    import snappix.data.check_list as cd
    from snappix.tools.check_data import main

    def slow(task):
        open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
        time.sleep(120)
        return task[0], "ok", ""

    cd._check_task = slow
    sys.exit(main(["--data_path", sys.argv[2], "--workers", "2", "--no_progress"]))
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_check_data_workers_exit_when_the_parent_is_killed(tmp_path):
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    for i in range(4):
        (tmp_path / f"v{i}.mp4").write_bytes(b"x")
    (tmp_path / "list.csv").write_text("".join(f"{tmp_path / f'v{i}.mp4'} 0\n" for i in range(4)))
    (tmp_path / "driver.py").write_text(_DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(pids_dir), str(tmp_path / "list.csv")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [int(p.stem) for p in pids_dir.glob("*.pid")]
            time.sleep(0.1)
        assert len(workers) == 2, "the two workers did not start"
        assert all(_alive(pid) for pid in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        left = [pid for pid in workers if _alive(pid)]
        assert not left, f"workers {left} still running 5 s after their parent was killed"
    finally:
        proc.kill()
        for pid in workers:  # only the workers this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
