"""scripts/supervise.py (what `make run` runs): a child that dies is restarted, the others keep running, and
SIGINT (Ctrl-C) stops them all."""

import signal
import subprocess
import sys
import time

from tests.conftest import ROOT


def test_it_restarts_a_crashed_child_keeps_the_others_and_stops_all_on_ctrl_c(tmp_path):
    steady = tmp_path / "steady.pid"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "supervise.py"),
            f"steady=sh -c 'echo $$ > {steady}; exec sleep 600'",
            "crashy=sh -c 'exit 3'",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.5)  # restarts after 1 s, then 2 s: at least two
    supervisor.send_signal(signal.SIGINT)
    output, _ = supervisor.communicate(timeout=20)
    assert supervisor.returncode == 0
    assert "crashy exited with 3; restarting in 1 s" in output
    assert "restarted crashy (pid" in output and "restart 2)" in output
    assert "steady exited" not in output  # never touched by its neighbour's crashes
    assert "KiwiWhale stopped." in output
    pid = int(steady.read_text())
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0  # stopped with the rest
