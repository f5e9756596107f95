"""One writer per output: a run holds an advisory lock on its output (`fcntl.flock`, released by
the kernel even when the process is killed), so a second process on the same output is refused
while the first runs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import ClassVar

from vidzero.errors import BadInput
from vidzero.media.outputs import _process_umask, write_errors


class OutputLock:
    """An exclusive advisory lock on an output, held while a run writes it. Re-entrant within a
    process (a batch claims a job's output, then the run saves to it)."""

    _held: ClassVar[dict[str, int]] = {}  # lock file -> nesting depth, in this process

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(f".{out.name}.lock")
        self.out = out
        self._fd: int | None = None
        self._key = os.path.realpath(self.path)
        self.nested = False  # entered while this process already held it

    def __enter__(self) -> OutputLock:
        if self._held.get(self._key):
            self._held[self._key] += 1
            self.nested = True
            return self
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no lock, as before
            return self
        with write_errors(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_process_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self.path.read_text(errors="replace").strip() or "another process"
            raise BadInput(
                f"{self.out} is being written by another vidzero process ({holder}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        self._held[self._key] = 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._held.get(self._key, 0) > 1:
            self._held[self._key] -= 1
            return
        self._held.pop(self._key, None)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None
