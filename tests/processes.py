"""Running the CLI in a child process that is killed at a chosen point (the interruption tests)."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from vidzero.cli import app

runner = CliRunner()


def killed_run(args: list[str], fault: str) -> int:
    """Run the CLI in a child process that SIGKILLs itself at the named point; return its exit
    status (-9 when killed). A fork of this process (torch already imported, single-threaded)
    starts in milliseconds; elsewhere a fresh interpreter."""
    if hasattr(os, "fork"):
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                os.environ["VIDZERO_FAULT"] = fault
                runner.invoke(app, args)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDZERO_FAULT": fault}
    code = "import sys; from vidzero.cli import main; sys.argv = ['vidzero'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=180).returncode
