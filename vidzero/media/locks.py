"""One writer per output: a claim holds an advisory lock on its output (`fcntl.flock` on a lock
file beside it, released by the kernel even when the process is killed).

The lock belongs to one claim, not to a process: flock locks belong to an open file description,
so a second claim opens the lock file again and is refused whether it comes from another process
or from another thread of this one (the studio's worker threads, a web app's request threads, two
threads of one script). Nesting is the claimant's business (vidzero.runs.output.Output.claim).

Releasing unlinks the lock file before closing it, so that no empty lock file outlives a run. A
claimant that opened the old file just before it was unlinked may then lock a file that no longer
has a name while a third claimant creates and locks a new one; so a claim is held only once the
locked file is still the one at the path (same inode), and tried again otherwise.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from vidzero.errors import BadInput
from vidzero.media.outputs import _process_umask, write_errors


class OutputBusy(BadInput):
    """The output is claimed by another run (another process, or another thread of this one)."""


def _holder_text(fd: int) -> str:
    """What the holder wrote in the lock file, read through the descriptor opened on it (the
    path may be gone by now)."""
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class OutputLock:
    """An exclusive advisory lock on an output, held by one claim while it writes the output."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(f".{out.name}.lock")
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no lock
            return self
        while True:
            with write_errors(self.path):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_process_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder_text(fd)
                os.close(fd)
                raise OutputBusy(self._busy_message(holder)) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # locked a file its holder had just released and unlinked: try the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} thread {threading.get_ident()}".encode())
        self._fd = fd
        return self

    def _busy_message(self, holder: str) -> str:
        if holder.split()[:2] == ["pid", str(os.getpid())]:
            return f"{self.out} is being written by another run in this process; wait for it to finish or stop it"
        return (
            f"{self.out} is being written by another vidzero process ({holder or 'unknown'}); "
            "wait for it to finish or stop it"
        )

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
