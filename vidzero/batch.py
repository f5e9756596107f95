"""Batch jobs: many runs from one job file, resumable, across processes, GPUs and machines.

A job file is JSON Lines (one object per line: `task`, an optional `id`, and the task's
arguments under the names of the Python API; an optional first line `{"defaults": {...}}` holds
values for every job) or CSV (one row per job, the same names as columns; the simple case of one
task over a folder). Relative paths are relative to the job file. Each job writes `DIR/<id>.<format>`
(format mp4 unless the job says `format` or `output`) with its manifest, contact sheet and state,
exactly as a single run does.

Safe to rerun and to run many times at once:

- a job is **claimed** by the lock on its output before it runs, so processes started on the
  same DIR (by hand, or one per GPU by `torchrun`/`accelerate launch`) never run one job twice;
  each process starts at its own share of the jobs (rank r of W starts at job r, then r + W, ...)
  and takes what the others have not claimed when it runs out, so a slow GPU holds no one up;
- a job whose output exists with a manifest of the same fingerprint (parameters, plan, inputs)
  is **skipped**; an interrupted one **resumes** from its own state; a job that fails is recorded
  with its one-line error and the batch goes on;
- the job file is only read; the summary (`DIR/batch.json`, `DIR/batch.csv`, and
  `DIR/batch.index.png`, every job's contact sheet) is rewritten after every job under a lock,
  from one record per job in `DIR/.vidzero-batch/`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidzero.errors import BadInput
from vidzero.options import RunOptions, python_fields

TASKS = ("generate", "extend", "predict", "infill", "deflicker")
RECORDS = ".vidzero-batch"
PATH_KEYS = {"image", "clip", "state"}  # job fields that name files
TASK_KEYS: dict[str, set[str]] = {
    "generate": {"prompt", "frames"},
    "extend": {"image", "prompt", "frames", "loop"},
    "predict": {"clip", "prompt", "frames", "from_frame", "to_frame", "new_only"},
    "infill": {"prompt", "frames", "keys", "clips", "start", "end", "order", "loop"},
    "deflicker": {"clip", "anchors", "window", "temporal", "flow"},
}
JOB_KEYS = {"task", "id", "output", "format"}
RUN_KEYS = {f.name for f in python_fields()} - {"callback", "progress", "output_type"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@dataclass
class Job:
    index: int
    id: str
    task: str
    args: dict[str, Any]
    output: Path  # inside the batch folder

    def run_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k in RUN_KEYS}

    def task_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k not in RUN_KEYS}


# ---------------------------------------------------------------------- reading job files
def read_jobs(path: str | Path, out_dir: str | Path, defaults: dict[str, Any] | None = None) -> list[Job]:
    """Every job of a job file, checked for structure (bad lines, tasks, names, duplicate ids)
    before anything runs. Per-job input problems (a missing image) are found when the job runs."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"job file not found: {path}", "jobs")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read job file {path}: {type(exc).__name__}", "jobs") from None
    rows, file_defaults = read_csv(text, path) if path.suffix.lower() == ".csv" else read_jsonl(text, path)
    base = {**file_defaults, **(defaults or {})}
    jobs, ids = [], {}
    out_dir = Path(out_dir)
    for number, (line, row) in enumerate(rows):
        task = row.get("task", base.get("task"))
        # defaults reach the jobs whose task takes them (a model default means nothing to deflicker)
        merged = {**{k: v for k, v in base.items() if task in TASKS and k in allowed_keys(task)}, **row}
        job = make_job(number, line, merged, path.parent, out_dir)
        if job.id in ids:
            raise BadInput(f"{path}:{line}: job id {job.id!r} is also the id of the job on line {ids[job.id]}", "jobs")
        ids[job.id] = line
        jobs.append(job)
    if not jobs:
        raise BadInput(f"{path} holds no jobs", "jobs")
    return jobs


def read_jsonl(text: str, path: Path) -> tuple[list[tuple[int, dict]], dict]:
    rows, defaults = [], {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{line_number}: not valid JSON ({exc.msg})", "jobs") from None
        if not isinstance(value, dict):
            raise BadInput(f"{path}:{line_number}: a job must be a JSON object", "jobs")
        if set(value) == {"defaults"}:
            if rows or not isinstance(value["defaults"], dict):
                raise BadInput(f"{path}:{line_number}: defaults must be an object on the first line", "jobs")
            defaults = value["defaults"]
            continue
        rows.append((line_number, value))
    return rows, defaults


def read_csv(text: str, path: Path) -> tuple[list[tuple[int, dict]], dict]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise BadInput(f"{path}: no header row", "jobs")
    rows = []
    for row in reader:
        values = {k.strip(): parse_cell(v) for k, v in row.items() if k and v is not None and v.strip() != ""}
        rows.append((reader.line_num, values))
    return rows, {}


def parse_cell(text: str) -> Any:
    """CSV cells: numbers and booleans as such, the rest as text."""
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def allowed_keys(task: str) -> set[str]:
    return TASK_KEYS[task] | JOB_KEYS | (RUN_KEYS if task != "deflicker" else set())


def make_job(number: int, line: int, values: dict[str, Any], base: Path, out_dir: Path) -> Job:
    where = f"line {line}"
    task = values.get("task")
    if task not in TASKS:
        raise BadInput(f"{where}: unknown task {task!r} (use {', '.join(TASKS)})", "jobs")
    allowed = allowed_keys(task)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BadInput(f"{where}: {task} takes no {unknown[0]!r}", "jobs")
    args = {k: v for k, v in values.items() if k not in JOB_KEYS}
    required = {
        "generate": ("prompt",),
        "extend": ("image", "prompt"),
        "predict": ("clip", "prompt"),
        "infill": ("prompt",),
        "deflicker": ("clip",),
    }[task]
    missing = [k for k in required if k not in args]
    if missing:
        raise BadInput(f"{where}: {task} needs {missing[0]!r}", "jobs")
    for key in PATH_KEYS & set(args):
        args[key] = resolve(base, args[key], where)
    for key in ("keys", "clips"):
        if key in args:
            if not isinstance(args[key], dict):
                raise BadInput(f"{where}: {key} must be an object {{frame: path}}", "jobs")
            try:
                args[key] = {int(k): resolve(base, v, where) for k, v in args[key].items()}
            except ValueError:
                raise BadInput(f"{where}: {key} positions must be whole frame numbers", "jobs") from None
    for key in ("start", "end"):
        if key in args:
            args[key] = resolve(base, args[key], where)
    job_id = str(values.get("id") or derived_id(task, args, number))
    if not ID_PATTERN.match(job_id):
        raise BadInput(f"{where}: job id {job_id!r} must be letters, digits, '.', '_' or '-'", "jobs")
    if "output" in values:
        output = out_dir / str(values["output"])
        if Path(str(values["output"])).is_absolute() or ".." in Path(str(values["output"])).parts:
            raise BadInput(f"{where}: output must be a name inside the batch folder", "jobs")
    else:
        fmt = str(values.get("format", "mp4")).lstrip(".")
        output = out_dir / (job_id if fmt in ("", "png", "frames") else f"{job_id}.{fmt}")
    return Job(number, job_id, task, args, output)


def resolve(base: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadInput(f"{where}: file names must be text, got {value!r}", "jobs")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def derived_id(task: str, args: dict[str, Any], number: int) -> str:
    """An id from the job's inputs (the image or clip file name), else its place in the file."""
    source = args.get("image") or args.get("clip") or args.get("start")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(source).stem)[:80] if source else ""
    return f"{stem}-{task}" if stem else f"job-{number:05d}"


# ---------------------------------------------------------------------- running
@dataclass
class Record:
    id: str
    task: str
    status: str  # done, skipped (done already), failed, busy (claimed by another process)
    seconds: float = 0.0
    unet_passes: int = 0
    output: str = ""
    error: str = ""
    rank: int = 0
    attempts: list[str] = field(default_factory=list)


def process_order(count: int, rank: int, world: int) -> list[int]:
    """Rank r first takes jobs r, r + W, ...; then the others' jobs (unclaimed ones), in order."""
    own = list(range(rank, count, world))
    return own + [i for i in range(count) if i % world != rank]


def distributed_rank() -> tuple[int, int, str | None]:
    """(rank, world size, device) under torchrun or `accelerate launch` (through accelerate's
    PartialState); (0, 1, None) for a plain process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    device = str(state.device) if state.device.type == "cuda" else None
    return state.process_index, state.num_processes, device


class Batch:
    def __init__(
        self,
        jobs: list[Job],
        out_dir: Path,
        job_file: Path,
        force: bool = False,
        rank: int = 0,
        world: int = 1,
        device: str | None = None,
        progress: Callable[[Job], Any] | None = None,
        log: Callable[[str], None] | None = None,
        on_job: Callable[[int, int], None] | None = None,
    ) -> None:
        self.jobs, self.out_dir, self.job_file = jobs, out_dir, job_file
        self.force, self.rank, self.world, self.device = force, rank, world, device
        self.progress = progress  # job -> a progress object for its run (or None: silent)
        self.log = log or (lambda text: None)
        self.on_job = on_job or (lambda done, total: None)
        self.records_dir = out_dir / RECORDS
        self._backbones: dict[tuple, Any] = {}

    def run(self) -> list[Record]:
        from vidzero.outputs import write_errors

        with write_errors(self.records_dir):
            self.records_dir.mkdir(parents=True, exist_ok=True)
        mine: list[Record] = []
        order = process_order(len(self.jobs), self.rank, self.world)
        for done, index in enumerate(order):
            job = self.jobs[index]
            record = self.run_job(job)
            if record.status != "busy":
                mine.append(record)
            self.log(
                f"job {done + 1}/{len(order)} {job.id}: {record.status}"
                + (f" ({record.seconds:.1f} s)" if record.status == "done" else "")
                + (f": {record.error}" if record.error else "")
            )
            self.write_summary()
            self.on_job(done + 1, len(order))
        return mine

    def run_job(self, job: Job) -> Record:
        from vidzero.outputs import OutputLock

        try:
            with OutputLock(job.output) as _claim:
                return self._run_claimed(job)
        except BadInput as exc:
            if "being written by another vidzero process" in str(exc):
                return Record(job.id, job.task, "busy", output=str(job.output), rank=self.rank)
            return self._record(job, Record(job.id, job.task, "failed", error=exc.for_cli(), rank=self.rank))

    def _run_claimed(self, job: Job) -> Record:
        started = time.perf_counter()
        attempt = f"rank {self.rank} pid {os.getpid()}"
        previous = self._read_record(job.id)
        attempts = [*(previous.attempts if previous else []), attempt]
        if previous is not None and previous.status in ("done", "skipped") and not self.force:
            # done by another process (or an earlier batch): confirm, and keep its record
            try:
                check = self._deflicker if job.task == "deflicker" else self._generate
                status, _ = check(job, skip_only=True)
            except BadInput:
                status = "changed"
            if status == "skipped":  # the record on disk stays as the process that ran it wrote it
                return Record(**{**vars(previous), "status": "skipped"})
        self._record(
            job, Record(job.id, job.task, "running", output=str(job.output), rank=self.rank, attempts=attempts)
        )
        try:
            if job.task == "deflicker":
                status, passes = self._deflicker(job)
            else:
                status, passes = self._generate(job)
        except BadInput as exc:
            return self._record(
                job,
                Record(
                    job.id,
                    job.task,
                    "failed",
                    time.perf_counter() - started,
                    error=exc.for_cli(),
                    rank=self.rank,
                    attempts=attempts,
                ),
            )
        except Exception as exc:  # one job's defect must not stop thousands of others
            return self._record(
                job,
                Record(
                    job.id,
                    job.task,
                    "failed",
                    time.perf_counter() - started,
                    error=f"internal error: {type(exc).__name__}: {exc}",
                    rank=self.rank,
                    attempts=attempts,
                ),
            )
        if status == "skipped":  # done by an earlier batch whose records are gone
            attempts = []
        return self._record(
            job,
            Record(
                job.id,
                job.task,
                status,
                time.perf_counter() - started,
                passes,
                str(job.output),
                rank=self.rank,
                attempts=attempts,
            ),
        )

    def _deflicker(self, job: Job, skip_only: bool = False) -> tuple[str, int]:
        from dataclasses import asdict

        from vidzero.flicker import DeflickerSettings
        from vidzero.outputs import written_by_vidzero
        from vidzero.tasks.deflicker import deflicker_clip

        args = job.task_args()
        settings = DeflickerSettings(**{k: args[k] for k in ("window", "temporal", "flow") if k in args})
        manifest = written_by_vidzero(job.output) if job.output.exists() else None
        same = manifest is not None and (manifest.get("input"), manifest.get("settings"), manifest.get("anchors")) == (
            args["clip"],
            asdict(settings),
            args.get("anchors", []),
        )
        if same and not self.force:
            return "skipped", 0
        if skip_only:
            return "changed", 0
        deflicker_clip(
            args["clip"], job.output, args.get("anchors"), settings, force=manifest is not None or self.force
        )
        return "done", 0

    def _generate(self, job: Job, skip_only: bool = False) -> tuple[str, int]:
        """Skip a job done with the same fingerprint, resume an interrupted one, else run it
        (replacing the batch's own earlier output of a job that has since changed)."""
        from vidzero.outputs import written_by_vidzero
        from vidzero.runstate import load_state, state_paths

        run = self.plan(job)
        print_id = run.fingerprint()
        manifest = written_by_vidzero(job.output) if job.output.exists() else None
        if manifest is not None and manifest.get("fingerprint") == print_id and not self.force:
            return "skipped", 0
        if skip_only:
            return "changed", 0
        state = state_paths(job.output)[0]
        resume = False
        if state.exists():
            meta, _ = load_state(state)
            resume = not meta.get("finished") and meta.get("fingerprint") == print_id and not self.force
        run.progress = self.progress(job) if self.progress is not None else False
        run.save(job.output, force=not resume and (self.force or manifest is not None or state.exists()), resume=resume)
        return "done", run.engine.stats.unet_samples

    def plan(self, job: Job) -> Any:
        from vidzero.tasks import common

        options = job.run_options()
        if self.device is not None and "device" not in options:
            options["device"] = self.device
        checked = RunOptions(**options)
        key = tuple(
            str(getattr(checked, k))
            for k in (
                "model",
                "device",
                "dtype",
                "variant",
                "revision",
                "cache_dir",
                "offload",
                "vae_tiling",
                "attention_slicing",
                "forward_chunking",
                "compile",
                "window",
                "height",
                "width",
                "vae_slice",
            )
        )
        if key not in self._backbones:
            self._backbones.clear()  # one model in memory at a time
            self._backbones[key] = common.load_backbone(checked.check())
        return call_task(job, self._backbones[key], options)

    # ------------------------------------------------------------------ records and summary
    def _record_path(self, job_id: str) -> Path:
        return self.records_dir / f"{job_id}.json"

    def _read_record(self, job_id: str) -> Record | None:
        try:
            return Record(**json.loads(self._record_path(job_id).read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None

    def _record(self, job: Job, record: Record) -> Record:
        from vidzero.outputs import write_json

        write_json(self._record_path(job.id), vars(record))
        return record

    def write_summary(self) -> None:
        """batch.json, batch.csv and batch.index.png from every job's record (under a lock)."""
        import fcntl

        from vidzero.outputs import atomic_write_bytes, write_json

        lock_path = self.records_dir / ".summary.lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows = []
            for job in self.jobs:
                record = self._read_record(job.id)
                rows.append(vars(record) if record else vars(Record(job.id, job.task, "pending")))
            counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed", "pending", "busy")}
            write_json(
                self.out_dir / "batch.json",
                {"job_file": str(self.job_file), "jobs": len(rows), "counts": counts, "rows": rows},
            )
            buffer = io.StringIO()
            columns = ["id", "task", "status", "seconds", "unet_passes", "output", "error"]
            writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**r, "seconds": round(r["seconds"], 3)} for r in rows)
            atomic_write_bytes(self.out_dir / "batch.csv", buffer.getvalue().encode())
            self._write_index(rows)

    def _write_index(self, rows: list[dict], limit: int = 64) -> None:
        """Every finished job's contact sheet, scaled to one row of thumbnails, with its id."""
        import cv2

        from vidzero.io import read_png, write_png

        tiles = []
        for row in rows:
            sheet = Path(row["output"] + ".contact.png") if row.get("output") else None
            if row["status"] not in ("done", "skipped") or sheet is None or not sheet.exists():
                continue
            image = read_png(sheet)
            scale = 480 / image.shape[1]
            image = cv2.resize(image, (480, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            label = np.full((18, 480, 3), 255, np.uint8)
            cv2.putText(label, row["id"][:60], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(np.concatenate([label, image]))
            if len(tiles) == limit:
                break
        if not tiles:
            return
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
        columns = min(4, len(tiles))
        while len(tiles) % columns:
            tiles.append(np.full_like(tiles[0], 255))
        grid = np.concatenate([np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)])
        write_png(self.out_dir / "batch.index.png", grid)


def call_task(job: Job, backbone: Any, options: dict[str, Any]) -> Any:
    """The PlannedRun of a generating job, through the Python API."""
    import vidzero

    args = job.task_args()
    common = {**options, "backbone": backbone, "progress": False}
    if job.task == "generate":
        return vidzero.generate(args["prompt"], args.get("frames"), **common)
    if job.task == "extend":
        return vidzero.extend(args["image"], args["prompt"], args.get("frames"), loop=args.get("loop", False), **common)
    if job.task == "predict":
        return vidzero.predict(
            args["clip"],
            args["prompt"],
            args.get("frames", 15),
            from_frame=args.get("from_frame", 0),
            to_frame=args.get("to_frame"),
            new_only=args.get("new_only", False),
            **common,
        )
    frames = args.get("frames", 16)
    keys = dict(args.get("keys", {}))
    if "start" in args or "end" in args:
        if "start" not in args or "end" not in args:
            raise BadInput("infill takes start and end together")
        keys.setdefault(0, args["start"])
        keys.setdefault(frames - 1, args["end"])
    timeline = vidzero.Keyframes(frames, keys, dict(args.get("clips", {})))
    return vidzero.infill(
        timeline, args["prompt"], order=args.get("order", "inward"), loop=args.get("loop", False), **common
    )


def run_batch(
    jobs: str | Path, output: str | Path, force: bool = False, progress: bool = True, **defaults: Any
) -> list[Record]:
    """Run a job file from Python, as `vidzero batch` does (defaults: run options for every job)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{{option}} {out} is a file, not a folder", "output")
    from vidzero.progress import LineProgress

    rank, world, device = distributed_rank()
    runner = Batch(
        read_jobs(jobs, out, defaults),
        out,
        Path(jobs),
        force=force,
        rank=rank,
        world=world,
        device=device,
        progress=(lambda job: LineProgress(label=job.id)) if progress else None,
        log=print if progress else None,
    )
    return runner.run()
