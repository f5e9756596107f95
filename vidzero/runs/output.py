"""One output's life, owned by one object: what is on disk, the claim, where a run begins, the
commit. Generating runs, deflicker, the quality and flicker reports and the batch all ask an
`Output`; the rules it applies are vidzero.media.outputs' (names, ownership, atomic writes).

What is on disk at an output is one of:

- nothing;
- **finished**: the output with a manifest that proves vidzero wrote it as it is now;
- **interrupted**: a state file of a run that has not finished (and its frames folder);
- **foreign**: anything else, which vidzero never replaces.

Each file is read, and the output hashed, at most once per `Output`; the cache is dropped when
the output is claimed (another process may have finished it meanwhile) and replaced by what the
commit wrote.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidzero.errors import BadInput
from vidzero.media.locks import OutputBusy, OutputLock
from vidzero.media.outputs import (
    FRAME_NAME,
    MANIFEST,
    PARTIAL,
    STATE,
    check_destination,
    check_output,
    check_parent,
    cleanup_temporaries,
    discard,
    read_manifest,
    resolved,
    run_sidecars,
    sidecar,
    write_errors,
    write_json,
    written_by_vidzero,
)
from vidzero.version import __version__

if TYPE_CHECKING:  # torch, numpy and the state files only once something is read or written:
    import numpy as np  # `vidzero --help` and the batch's planning stay light
    import torch

_UNREAD: Any = object()


@dataclass(frozen=True)
class Start:
    """Where a run begins: afresh, from an interrupted run's state, or nowhere (it is complete)."""

    complete: bool = False
    state: tuple[dict, dict[str, torch.Tensor]] | None = None  # (meta, tensors) to resume from


class Output:
    """An output path and the files vidzero keeps beside it."""

    def __init__(self, path: str | Path, inputs: Iterable[str | Path] = (), sidecars: list[Path] | None = None):
        self.inputs = [Path(p) for p in inputs]
        self.path = check_destination(path, self.inputs)  # names and folders, before any claim
        self.sidecars = run_sidecars(self.path) if sidecars is None else sidecars
        self.manifest_path = sidecar(self.path, MANIFEST)
        self.state_path, self.partial = sidecar(self.path, STATE), sidecar(self.path, PARTIAL)
        self._owner: int | None = None  # the thread that holds the claim
        self._forget()

    def _forget(self) -> None:
        self._manifest: dict | None = _UNREAD
        self._state: tuple[dict, dict[str, torch.Tensor]] | None = _UNREAD

    # ------------------------------------------------------------------ what is on disk
    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def manifest(self) -> dict | None:
        """The manifest that proves vidzero wrote the output as it is now, or None."""
        if self._manifest is _UNREAD:
            self._manifest = written_by_vidzero(self.path) if self.exists() else None
        return self._manifest

    def state(self) -> tuple[dict, dict[str, torch.Tensor]] | None:
        """(meta, tensors) of the state file beside the output, or None."""
        if self._state is _UNREAD:
            from vidzero.runs.state import load_state

            self._state = load_state(self.state_path) if self.state_path.exists() else None
        return self._state

    def proof(self) -> str:
        """The manifest's proof entry as text ("" when vidzero did not write what is there)."""
        manifest = self.manifest()
        return json.dumps(manifest["vidzero"], sort_keys=True) if manifest is not None else ""

    def finished_as(self, fingerprint: str) -> bool:
        """The output is there, proven, and was made by a run of this fingerprint."""
        manifest = self.manifest()
        return manifest is not None and manifest.get("fingerprint") == fingerprint

    def interrupted_as(self, fingerprint: str) -> bool:
        """An unfinished run of this fingerprint left its state here."""
        state = self.state()
        return state is not None and not state[0].get("finished") and state[0].get("fingerprint") == fingerprint

    def finishing_files(self, fingerprint: str) -> list[Path]:
        """What a run of `fingerprint` wrote beside the output while finishing, before it moved the
        output into place (a run killed between its manifest and its video): its manifest and the
        sidecars that manifest lists. Empty when the output is in place, or the manifest is
        another run's."""
        if self.exists():
            return []
        record = read_manifest(self.manifest_path)
        if record is None or record.get("fingerprint") != fingerprint:
            return []
        if resolved(str(record.get("output", ""))) != resolved(self.path):
            return []
        listed = {resolved(str(p)) for p in record.get("sidecars", [])}
        return [p for p in self.sidecars if resolved(p) in listed]

    def job_start(self, fingerprint: str, force: bool, made: str = "") -> str:
        """Where a batch job of `fingerprint` starts at this output: "done" (finished as the job
        makes it), "resume" (its interrupted run left its state here) or "fresh", over nothing,
        over the job's own earlier output (`made`: the proof the batch recorded when it wrote it,
        still what is there) or, with `force`, over vidzero's; anything else is refused. Reads,
        never writes; the run's `begin` keeps the files a fresh start may replace to vidzero's."""
        if not force and self.finished_as(fingerprint):
            return "done"
        if not force and self.interrupted_as(fingerprint):
            return "resume"
        if self.exists() and not force and not (made and self.proof() == made):
            raise BadInput(f"output exists: {self.path} (another run made it, not this batch; {{+force}} replaces it)")
        return "fresh"

    def check_writable(self, force: bool, known_own: Iterable[Path] = ()) -> None:
        """Refuse to write where the output would lose a user's file (vidzero.media.outputs)."""
        check_output(self.path, force, self.inputs, self.sidecars, known_own, manifest=self.manifest)

    # ------------------------------------------------------------------ the claim
    @contextlib.contextmanager
    def claim(self) -> Iterator[Output]:
        """Hold the output's lock (one writer per output); clear temporaries a killed run left.

        The claim is this object's, in the thread that took it: claiming again through the same
        `Output` in that thread nests (a batch claims a job's output, asks what is there, then
        saves through it), while any other claim on the path, from another `Output`, thread or
        process, is refused with `OutputBusy`. What was read before the outermost claim is read
        again under it (another writer may have finished meanwhile)."""
        me = threading.get_ident()
        if self._owner == me:
            yield self
            return
        if self._owner is not None:
            raise OutputBusy(f"{self.path} is being written by another thread through the same Output")
        with OutputLock(self.path):
            self._owner = me
            try:
                self._forget()
                cleanup_temporaries(self.path)
                yield self
            finally:
                self._owner = None

    def decide(self, fingerprint: str, force: bool, resume: bool) -> str:
        """Where a generating run of `fingerprint` would start ("fresh", "resume" or "complete"),
        refusing what would lose a user's file; reads, never writes (a page checks before it
        starts a run; `begin` decides again under the claim)."""
        state = self.state()
        meta = state[0] if state is not None else None
        if meta is not None and meta.get("fingerprint") != fingerprint:
            if resume:
                raise BadInput(f"{self.state_path} belongs to a different run (parameters, plan or inputs differ)")
            if not meta.get("finished") and not force:
                raise BadInput(
                    f"an interrupted run of other settings left {self.state_path}: {{+force}} starts this one over it"
                )
        own_state = [self.state_path] if meta is not None else []
        if resume and meta is not None and meta.get("fingerprint") == fingerprint:
            self.check_writable(True, own_state + self.finishing_files(fingerprint))
            if meta.get("finished"):
                return "complete"
            if not self.partial.is_dir():
                raise BadInput(f"cannot resume: the frames folder {self.partial} is missing")
            return "resume"
        if meta is not None and not meta.get("finished") and not force and not resume:
            raise BadInput(
                f"an interrupted run of {self.path} exists ({self.state_path.name}): {{+resume}} continues it, "
                "{+force} starts over"
            )
        self.check_writable(force or resume, own_state)
        if self.partial.exists():
            if not self.partial.is_dir() or any(not FRAME_NAME.match(e.name) for e in self.partial.iterdir()):
                raise BadInput(f"{self.partial} holds files vidzero did not write; move it away")
        return "fresh"

    def begin(self, fingerprint: str, force: bool, resume: bool) -> Start:
        """Where a generating run of `fingerprint` starts; clears what a fresh run replaces and
        makes the frames folder. Call while claimed."""
        start = self.decide(fingerprint, force, resume)
        if start == "complete":
            discard(self.partial)  # killed while cleaning up: the run is complete
            return Start(complete=True)
        if start == "resume":
            return Start(state=self.state())
        discard(self.partial)
        if self.state() is not None:
            self.state_path.unlink()
            self._state = None
        with write_errors(self.partial):
            self.partial.mkdir()
        return Start()

    # ------------------------------------------------------------------ the commit
    def write_manifest(self, record: dict) -> None:
        """The manifest, written before the output moves into place: its proof is what lets a
        later run replace the output, and what the batch records."""
        write_json(self.manifest_path, record)
        self._manifest = record

    def commit(self, writer: Any) -> None:
        """Move the finished output (a VideoWriter's temporary) into place over vidzero's own
        previous output, which `check_writable` proved to be vidzero's."""
        if self.path.is_dir() and not self.path.is_symlink():  # only PNG frames, or no proof
            for entry in self.path.iterdir():
                if FRAME_NAME.match(entry.name):
                    entry.unlink()
            self.path.rmdir()
        writer.commit()


def write_clip_report(
    clip: str | Path,
    paths: tuple[Path, Path],
    kind: str,
    force: bool,
    make: Callable[[], dict],
    plot: Callable[[dict, str], np.ndarray],
) -> dict:
    """A report of a clip, written beside it as JSON (`paths[0]`) and a picture (`paths[1]`);
    returns the report that `make` builds."""
    from vidzero.media.pictures import write_png

    claim_report(paths, clip, force)
    report = make()
    write_json(paths[0], {"vidzero": {"version": __version__, "kind": kind}, "clip": str(clip), **report})
    write_png(paths[1], plot(report, Path(clip).name))
    return report


def claim_report(paths: Iterable[Path], clip: str | Path, force: bool) -> None:
    """Reports written beside a clip (not an output of a run): their folder, not the clip itself,
    and replaced only when they are vidzero's own report and `force` is given."""
    paths = list(paths)
    for path in paths:
        check_parent(path, "report file")
        if resolved(path) == resolved(clip):
            raise BadInput(f"{path} would overwrite an input")
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise BadInput(f"output exists: {existing[0]} ({{+force}} replaces a previous vidzero report)")
    if existing and read_manifest(paths[0]) is None:
        raise BadInput(f"{existing[0]} was not written by vidzero; move it away")
