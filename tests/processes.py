"""Running the CLI in a child process that is killed at a chosen point (the interruption tests)."""

from __future__ import annotations

import os
import subprocess
import sys

# Installed in the child: SIGKILL at the named save point (`name`, or `name@N` for its N-th time).
KILL_HOOK = """
import os, signal
from vidzero.runs import finish
point, _, count = FAULT.partition("@")
seen = {"n": 0}
def kill_at(name):
    if name == point:
        seen["n"] += 1
        if seen["n"] >= int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
finish.SAVE_POINT_HOOKS.append(kill_at)
"""


def killed_run(args: list[str], fault: str) -> int:
    """Run the CLI in a fresh interpreter that SIGKILLs itself at the named save point (a hook
    on vidzero.runs.finish.SAVE_POINT_HOOKS, installed before the CLI starts); return its exit
    status, -9 when killed. A fresh process, not a fork of the test process: a resumed run must
    match an uninterrupted one across processes, which is what users do (a fork inherits the
    test process's state)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = "import sys\nfrom vidzero.app.cli import main\nsys.argv = ['vidzero'] + sys.argv[1:]\nmain()"
    code = f"FAULT = {fault!r}\n{KILL_HOOK}\n{cli}"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=300).returncode
