"""Where outputs go, and the rules that keep a user's files safe.

- **Names.** An output is a video file (`.mp4`, `.webm`, `.gif`) or a folder of PNG frames (a
  name without extension). Next to it vidzero writes sidecars named after the whole output name,
  extension included (`out.mp4.manifest.json`, `out.mp4.contact.png`, ...), so `a.mp4` and
  `a.webm` never share one.
- **Never destroy what the user did not make.** An existing output is refused; `--force`
  replaces it only when its manifest proves that vidzero wrote it (the manifest names the output
  and holds its SHA-256, or that of every frame for a folder of frames), and then only the files
  that manifest lists. An output that is, or resolves through links to, an input is refused with or
  without `--force`, and so is a folder output that holds an input, the current folder, the home
  folder or a file system root.
- **Atomic writes.** Every file is written to a hidden temporary name beside its final place and
  renamed when complete. Write errors (a full disk, a read-only folder, a name too long) become a
  one-line error with the temporary file removed; temporaries a killed run left behind are
  removed by the next run on the same output.
- **One writer per output**: see vidzero.media.locks.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vidzero.errors import BadInput, NoRoom

T = TypeVar("T")

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
DEFAULT_FPS = 8.0  # frames per second of an output, and of a folder of frames read as a clip
FRAME_FOLDER = "folder of PNG frames"
FRAME_NAME = re.compile(r"^\d{6}\.png$")
MANIFEST, CONTACT, STATE, PARTIAL, REPORT_JSON, REPORT_PNG = (
    ".manifest.json",
    ".contact.png",
    ".state.safetensors",
    ".partial",
    ".report.json",
    ".report.png",
)


# ---------------------------------------------------------------------- names
def output_kind(path: str | Path) -> str:
    """The container for an output path, or a clear error for an unknown extension."""
    text = str(path)
    name = Path(text.rstrip("/" + os.sep)).name
    if not text:
        raise BadInput("{option} is empty", "output")
    check_path_text(text, "{option}", "output")
    if name in ("", ".", ".."):  # an existing folder: check_not_an_input and check_output decide
        return FRAME_FOLDER
    lowered = name.lower()
    if lowered in VIDEO_SUFFIXES:
        raise BadInput(f"{{option}} {text!r} has no name before its extension (e.g. out{lowered})", "output")
    suffix = Path(name).suffix.lower()
    if text.endswith(("/", os.sep)) or suffix == "":
        return FRAME_FOLDER
    if suffix not in VIDEO_SUFFIXES:
        raise BadInput(
            f"unknown {{option}} extension {suffix!r} (use .mp4, .webm, .gif, or a folder name for PNG frames)",
            "output",
        )
    return suffix


def clean_path(path: str | Path) -> Path:
    return Path(str(path).rstrip("/" + os.sep) or "/")


def sidecar(output: str | Path, suffix: str) -> Path:
    """A file next to an output, named after the whole output name: out.mp4 -> out.mp4<suffix>."""
    p = clean_path(output)
    return p.with_name(p.name + suffix)


def run_sidecars(output: str | Path) -> list[Path]:
    """Every sidecar a generating run writes, in the order it writes them."""
    return [sidecar(output, s) for s in (MANIFEST, CONTACT, REPORT_JSON, REPORT_PNG, STATE)]


# ---------------------------------------------------------------------- safety
def resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(clean_path(path)))


def is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


# Kernel file systems: what looks like a file there is an interface, never a place for a video.
VIRTUAL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
WRITABLE_UNDER_DEV = (Path("/dev/shm"),)  # a tmpfs


def virtual_root(path: Path) -> Path | None:
    """The kernel file system `path` (links resolved) lies in, if any."""
    real = resolved(path)
    if any(is_within(real, ok) for ok in WRITABLE_UNDER_DEV):
        return None
    return next((root for root in VIRTUAL_FILE_SYSTEMS if is_within(real, root)), None)


FILE_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_path_text(text: str, what: str, option: str | None = None) -> None:
    """A path the system and every record can hold: no NUL byte (no system call takes one), and
    valid UTF-8 (other bytes arrive as surrogates, which the video writer and the JSON records
    cannot carry through a run and its resume)."""
    if "\0" in text:
        raise BadInput(f"{what} {text!r} holds a NUL byte, which no file name can", option)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(text)
        raise BadInput(
            f"{what} {raw!r} is not a UTF-8 name: rename it (vidzero writes UTF-8 names only)", option
        ) from None


def check_input_file(path: Path, what: str) -> None:
    """An input that is a regular file, judged by `stat` before anything opens it: a named pipe
    would block the open forever, a device or a kernel file is no image or video. A folder is
    the caller's to judge."""
    check_path_text(str(path), what)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInput(f"{what} not found: {path}") from None
    except OSError as exc:
        reason = ENVIRONMENT_ERRNOS.get(exc.errno) if exc.errno is not None else None
        raise BadInput(f"cannot read {what} {path}: {reason or exc.strerror}") from None
    kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode))
    if kind is not None:
        raise BadInput(f"{what} {path} is {kind}, not a file")
    root = virtual_root(path)
    if root is not None and not stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{what} {path} is in {root}, a kernel file system, not a file")


def check_parent(out: Path, what: str | None = None) -> None:
    """The folder `out` goes in can take it. Messages name the output option, or for a file the
    user did not name (a report beside a clip) `what` it is."""
    label, option = (what, None) if what else ("{option}", "output")
    parent = out.parent if str(out.parent) else Path(".")
    root = virtual_root(parent)
    if root is not None:
        raise BadInput(f"{label} {out} is in {root}, a kernel file system: choose a folder on a disk", option)
    if parent.exists() and not parent.is_dir():
        raise BadInput(f"{label} {out}: {parent} is a file, not a folder", option)
    if not parent.is_dir():
        raise BadInput(f"{label} folder does not exist: {parent}", option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{label} folder is not writable: {parent}", option)
    limit = os.pathconf(parent, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(os.fsencode(out.name)) + 40 > limit:  # room for the sidecar and temporary suffixes
        raise BadInput(f"{label} name is too long for this file system ({len(os.fsencode(out.name))} bytes)", option)


def check_not_an_input(out: Path, kind: str, inputs: Iterable[str | Path]) -> None:
    """Refuse outputs (and their sidecars) that are, or would swallow, an input."""
    target = resolved(out)
    protected = [Path.cwd().resolve(), Path.home().resolve(), Path(target.anchor)]
    if kind == FRAME_FOLDER and any(target == p for p in protected):
        raise BadInput(f"{{option}} {out} is the current, home or root folder; give a new folder name", "output")
    own = [target, *(resolved(s) for s in [*run_sidecars(out), sidecar(out, PARTIAL)])]
    for source in inputs:
        src = resolved(source)
        if src in own:
            raise BadInput(f"{{option}} {out} would overwrite the input {source}", "output")
        if kind == FRAME_FOLDER and is_within(src, target):
            raise BadInput(f"{{option}} {out} is a folder that holds the input {source}", "output")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(functools.partial(f.read, 1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_proof(path: Path) -> dict[str, Any]:
    """What proves an output is as vidzero wrote it: the SHA-256 of a video file, or of every frame
    of a folder of PNG frames (a retouched frame makes the folder the user's)."""
    if path.is_dir():
        frames = sorted(path.iterdir())
        return {"frames": len(frames), "frame_sha256": [sha256_of(f) for f in frames]}
    return {"sha256": sha256_of(path)}


def read_manifest(path: Path) -> dict | None:
    """A vidzero manifest, or None for anything else (missing, not JSON, someone else's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("vidzero"), dict) else None


def written_by_vidzero(out: Path) -> dict | None:
    """The manifest that proves vidzero wrote `out` as it is now, or None."""
    manifest = read_manifest(sidecar(out, MANIFEST))
    if manifest is None or resolved(manifest.get("output", "")) != resolved(out):
        return None
    proof = manifest["vidzero"]
    if out.is_dir() and not out.is_symlink():
        entries = list(out.iterdir())
        if not all(FRAME_NAME.match(e.name) and e.is_file() for e in entries) or len(entries) != proof.get("frames"):
            return None
        return manifest if proof.get("frame_sha256") == content_proof(out)["frame_sha256"] else None
    if out.is_file():
        return manifest if proof.get("sha256") == sha256_of(out) else None
    return manifest if not out.exists() else None


def check_destination(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """The checks that need no look at what exists: the name, the folder, the inputs."""
    kind = output_kind(path)
    out = clean_path(path)
    check_parent(out)
    check_not_an_input(out, kind, inputs)
    return out


def check_output(
    path: str | Path,
    force: bool,
    inputs: Iterable[str | Path] = (),
    sidecars: Iterable[Path] | None = None,
    known_own: Iterable[Path] = (),
    manifest: Callable[[], dict | None] | None = None,
) -> Path:
    """Refuse every output that would lose a user's file; return the output path.

    `sidecars` are the files written next to it (default: a generating run's); `known_own` are
    files the caller has already recognised as vidzero's (an interrupted run's state); `manifest`
    gives the output's proven manifest when the caller has read it already (vidzero.runs.output).
    """
    kind = output_kind(path)
    out = check_destination(path, inputs)
    sidecars = list(run_sidecars(out) if sidecars is None else sidecars)
    if out.exists() and kind == FRAME_FOLDER and not out.is_dir():
        raise BadInput(f"{{option}} {out} exists and is a file, not a folder of frames", "output")
    if out.exists() and kind != FRAME_FOLDER and out.is_dir():
        raise BadInput(f"{{option}} {out} exists and is a folder", "output")
    own = set(known_own)
    existing = [p for p in [out, *sidecars] if (p.exists() or p.is_symlink()) and p not in own]
    if not existing:
        return out
    if not force:
        raise BadInput(f"output exists: {existing[0]} ({{+force}} replaces a previous vidzero output)")
    proven = manifest() if manifest is not None else written_by_vidzero(out)
    if proven is None:
        raise BadInput(
            f"{existing[0]} was not written by vidzero (no matching manifest next to {out.name}): "
            "vidzero replaces only its own outputs; move it away or choose another name"
        )
    listed = {resolved(p) for p in proven.get("sidecars", [])}
    foreign = [p for p in existing if p != out and resolved(p) not in listed]
    if foreign:
        raise BadInput(
            f"{foreign[0]} was not written by the vidzero run that made {out.name}; move it away or choose another name"
        )
    return out


# ---------------------------------------------------------------------- atomic writes
def temporary_sibling(path: Path, suffix: str = ".part") -> Path:
    """A new empty hidden file beside `path`, to be written and then moved onto it atomically.

    mkstemp makes it private (0600); it gets the permissions any new file gets instead (umask
    applied), or every output written through it would end up unreadable to other users.
    """
    with write_errors(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_process_umask())
        os.close(fd)
    return Path(tmp)


@functools.cache
def _process_umask() -> int:
    # The only portable way to read the umask is to set it and set it back; done once per
    # process (at the first write), so no other thread can create a file in between later on.
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "the file is too large for this file system",
    errno.EIO: "an input/output error",
}


def environment_message(exc: OSError) -> str | None:
    """The one line for a refusal of the machine (a full disk, a read-only folder, a name too
    long), or None for an OSError that is a defect."""
    reason = ENVIRONMENT_ERRNOS.get(exc.errno) if exc.errno is not None else None
    if reason is None:
        return None
    name = str(exc.filename) if exc.filename else ""
    return reason + (f" ({name if len(name) <= 120 else name[:100] + '...'})" if name else "")


@contextlib.contextmanager
def write_errors(path: Path, cleanup: Path | None = None) -> Iterator[None]:
    """Turn the file system's refusals into one-line errors, removing a temporary on the way."""
    try:
        yield
    except OSError as exc:
        if cleanup is not None:
            discard(cleanup)
        reason = ENVIRONMENT_ERRNOS.get(exc.errno) if exc.errno is not None else None
        if reason is None:
            raise
        raise NoRoom(f"cannot write {path}: {reason}") from None


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temporary_sibling(path)
    with write_errors(path, cleanup=tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def cleanup_temporaries(out: Path) -> int:
    """Remove the hidden temporaries that killed runs left beside `out` and its sidecars."""
    names = {p.name for p in [out, *run_sidecars(out)]}
    removed = 0
    for entry in out.parent.iterdir() if out.parent.is_dir() else []:
        if entry.name.startswith(".") and ".part" in entry.name:
            owner = entry.name[1:].rsplit(".part", 1)[0]
            if any(owner.startswith(n + ".") for n in names):
                discard(entry)
                removed += 1
    return removed


def file_identity(path: Path) -> tuple:
    return str(path), *((st := os.stat(path)).st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_once(read: Callable[[Any], T], files: Callable[[Path], list[Path]] = lambda p: [p]) -> Callable[[Any], T]:
    """A reader whose result is kept while the files it reads (`files(path)`) are unchanged, so
    that one run reads and checks a record once however many steps consult it (a state file for
    `extend --from`, a manifest and the proof of its output for `reroll`)."""
    kept: dict[str, Any] = {}

    @functools.wraps(read)
    def reader(path: Any) -> T:
        try:
            key = [file_identity(f) for f in files(Path(path))]
        except (OSError, TypeError, ValueError):
            return read(path)
        if kept.get("key") != key:
            kept.update(key=key, value=read(path))  # one record at a time
        return kept["value"]

    return reader
