"""Running the CLI in a child process that is killed at a chosen point (the interruption tests)."""

from __future__ import annotations

import os
import subprocess
import sys


def killed_run(args: list[str], fault: str) -> int:
    """Run the CLI in a fresh interpreter that SIGKILLs itself at the named point (the
    VIDZERO_FAULT hook of vidzero.runs.run); return its exit status, -9 when killed. A fresh process,
    not a fork of the test process: a resumed run must match an uninterrupted one across
    processes, which is what users do (a fork inherits the test process's state)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDZERO_FAULT": fault}
    code = "import sys; from vidzero.app.cli import main; sys.argv = ['vidzero'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=300).returncode
