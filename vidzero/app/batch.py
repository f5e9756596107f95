"""Batch jobs: many runs from one job file, resumable, across processes, GPUs and machines.

A job file is JSON Lines (one object per line: `task`, an optional `id`, and the task's inputs
and run options under their table names; an optional first line `{"defaults": {...}}` holds
values for every job) or CSV (one row per job, the same names as columns; the simple case of one
task over a folder). Relative paths are relative to the job file. Each job writes `DIR/<id>.<format>`
(format mp4 unless the job says `format` or `output`) with its manifest, contact sheet and state,
exactly as a single run does: a job line becomes the same `RunSpec` the CLI and the Python API
build (vidzero.tasks.build_spec).

Safe to rerun and to run many times at once, and it never loses a file:

- the whole file is checked before any job runs: its structure, and every job's output as a
  resolved path (symbolic links followed) inside the batch folder, no two jobs writing one file;
- a job is **claimed** by the lock on its output before it runs, so processes started on the
  same DIR (by hand, or one per GPU by `torchrun`/`accelerate launch`) never run one job twice;
  each process starts at its own share of the jobs (rank r of W starts at job r, then r + W, ...)
  and takes what the others have not claimed when it runs out, so a slow GPU holds no one up;
- a job whose output exists with a manifest of the same fingerprint (its spec, plan and inputs)
  is **skipped**; an interrupted one **resumes** from its own state; a job that fails is recorded
  with its one-line error and the batch goes on;
- an output this batch did not make (a file, or another vidzero run's video) is never replaced
  without `--force`, and a file vidzero did not write never at all;
- `--pack N` samples N jobs at once in threads of one process, their model evaluations packed
  into one batched call (vidzero.core.packing): more windows per second on a GPU that one
  window leaves idle, for frames equal to an unpacked run's up to the rounding of a larger batch;
- the job file is only read; the summary (`DIR/batch.json`, `DIR/batch.csv`, and
  `DIR/batch.index.png`, every job's contact sheet) is rewritten after every job under a lock,
  from one record per job in `DIR/.vidzero-batch/`.

Over 400 lines because these rules (claiming, skipping, resuming, replacing, packing) are one
policy over one folder, and read best side by side.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidzero.app.jobs import Job, read_jobs
from vidzero.errors import BadInput, NoRoom
from vidzero.media.locks import OutputBusy
from vidzero.media.outputs import (
    ENVIRONMENT_ERRNOS,
    atomic_write_bytes,
    write_errors,
    write_json,
)
from vidzero.runs.options import RunOptions
from vidzero.runs.output import Output
from vidzero.tasks import OneModel, load_key, read_inputs, start
from vidzero.tasks.deflicker import deflicker_sidecars

if TYPE_CHECKING:
    from vidzero.core.packing import Packer

RECORDS = ".vidzero-batch"


# ---------------------------------------------------------------------- running
@dataclass
class Record:
    id: str
    task: str
    status: str  # done, skipped (done already), failed, busy (claimed by another process), running
    seconds: float = 0.0
    unet_passes: int = 0
    output: str = ""
    error: str = ""
    rank: int = 0
    attempts: list[str] = field(default_factory=list)
    made: str = ""  # the proof (manifest "vidzero" entry) of the output this batch wrote


def job_output(job: Job) -> Output:
    """The output a job writes, with the inputs it must never overwrite and its sidecars."""
    paths = read_inputs(job.task, job.inputs).paths()
    return Output(job.output, paths, sidecars=deflicker_sidecars(job.output) if job.task == "deflicker" else None)


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
        pack: int = 1,
    ) -> None:
        self.jobs, self.out_dir, self.job_file = jobs, out_dir, job_file
        self.force, self.rank, self.world, self.device = force, rank, world, device
        self.progress = progress  # job -> a progress object for its run (or None: silent)
        self.log = log or (lambda text: None)
        self.on_job = on_job or (lambda done, total: None)
        self.records_dir = out_dir / RECORDS
        self._model = OneModel()
        self.pack = pack
        self.packer: Packer | None = None  # set while packed jobs run
        self._say = threading.Lock()  # one thread at a time logs and rewrites the summary

    def run(self) -> list[Record]:
        order = process_order(len(self.jobs), self.rank, self.world)
        sampled = [self.jobs[i] for i in order if self.jobs[i].task != "deflicker"]
        if self.pack > 1 and len({load_key(self._options(job)) for job in sampled}) > 1:  # before anything is written
            raise BadInput("--pack runs every job on one model; the job file names several (model, dtype, device)")
        if self.pack > 1 and any(self._options(job).cache != "none" for job in sampled):
            # the cache hooks keep one sampling run's steps; packed windows are several runs at other steps
            raise BadInput("--pack samples several windows in one model call: it cannot take --cache")
        with write_errors(self.records_dir):
            self.records_dir.mkdir(parents=True, exist_ok=True)
        if self.pack > 1:
            return self._run_packed(order)
        return [r for r in (self._run_one(done, index, len(order)) for done, index in enumerate(order)) if r]

    def _run_one(self, done: int, index: int, total: int) -> Record | None:
        job = self.jobs[index]
        record = self.run_job(job)
        with self._say:
            self.log(
                f"job {done + 1}/{total} {job.id}: {record.status}"
                + (f" ({record.seconds:.1f} s)" if record.status == "done" else "")
                + (f": {record.error}" if record.error else "")
            )
            self.write_summary()
            self.on_job(done + 1, total)
        return record if record.status != "busy" else None

    def _run_packed(self, order: list[int]) -> list[Record]:
        """`pack` jobs at a time, each in its own thread, every model call shared (one model)."""
        sampled = [self.jobs[i] for i in order if self.jobs[i].task != "deflicker"]
        if sampled:
            from vidzero.core.packing import Packer  # torch: only when a job runs

            backbone = self.backbone_for(sampled[0])
            self.packer = Packer(backbone.predict_many)
        pool = ThreadPoolExecutor(self.pack, thread_name_prefix="vidzero-pack")
        try:
            futures = [pool.submit(self._run_one, done, index, len(order)) for done, index in enumerate(order)]
            records = [f.result() for f in futures]
        except BaseException as exc:  # Ctrl-C: the running jobs stop at their next model call
            if self.packer is not None:
                self.packer.cancel(exc)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [r for r in records if r]

    def run_job(self, job: Job) -> Record:
        try:
            output = job_output(job)
            with output.claim():
                return self._run_claimed(job, output)
        except OutputBusy:
            return Record(job.id, job.task, "busy", output=str(job.output), rank=self.rank)
        except BadInput as exc:
            return self._record(job, Record(job.id, job.task, "failed", error=exc.for_cli(), rank=self.rank))

    def _run_claimed(self, job: Job, output: Output) -> Record:
        started = time.perf_counter()
        previous = self._read_record(job.id)
        attempts = [*(previous.attempts if previous else []), f"rank {self.rank} pid {os.getpid()}"]

        def record(status: str, passes: int = 0, error: str = "") -> Record:
            seconds = time.perf_counter() - started
            made = output.proof() if status == "done" else previous.made if previous else ""
            return self._record(
                job,
                Record(job.id, job.task, status, seconds, passes, str(job.output), error, self.rank, attempts, made),
            )

        try:
            work = self._deflicker if job.task == "deflicker" else self._generate
            execute = work(job, output, previous)
            if execute is None:  # done already, with the same inputs and options
                if previous is not None and previous.status in ("done", "skipped"):
                    return dataclasses.replace(previous, status="skipped")  # its record stays as its maker wrote it
                attempts = []  # done by an earlier batch whose records are gone
                return record("skipped")
            self._record(
                job, Record(job.id, job.task, "running", output=str(job.output), rank=self.rank, attempts=attempts)
            )
            passes = execute()
        except NoRoom:  # the machine, not the job: every job after it would fail the same way
            raise
        except BadInput as exc:
            return record("failed", error=exc.for_cli())
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise
            return record("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # one job's defect must not stop thousands of others
            return record("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        return record("done", passes)

    def _start(self, job: Job, output: Output, fingerprint: str, previous: Record | None) -> str:
        """Where the job starts (the output's rules, vidzero.runs.output.Output.job_start), given
        the proof this batch recorded when it last wrote the job's output."""
        made = previous.made if previous is not None and previous.output == str(job.output) else ""
        return output.job_start(fingerprint, self.force, made)

    def _deflicker(self, job: Job, output: Output, previous: Record | None) -> Callable[[], int] | None:
        """The work (None when the output is done already with the same inputs)."""
        from vidzero.tasks.deflicker import deflicker_clip, deflicker_fingerprint

        inputs = read_inputs("deflicker", job.inputs)
        start = self._start(job, output, deflicker_fingerprint(inputs), previous)
        if start == "done":
            return None

        def work() -> int:
            deflicker_clip(inputs, output, force=True)  # replaces only what Output.job_start allowed
            return 0

        return work

    def _generate(self, job: Job, output: Output, previous: Record | None) -> Callable[[], int] | None:
        """The work (None for a job done with the same fingerprint): it resumes an interrupted
        run, or runs it anew."""
        run = start(job.spec(self.device), self.backbone_for(job))
        begin = self._start(job, output, run.fingerprint(), previous)
        if begin == "done":
            return None

        def work() -> int:
            run.progress = self.progress(job) if self.progress is not None else False
            run.engine.packer = self.packer
            try:
                run.save(output, force=begin == "fresh", resume=begin == "resume")
            finally:
                run.close()  # a failed save must not leave the packer waiting on this run
            return run.engine.stats.unet_samples

        return work

    def backbone_for(self, job: Job) -> Any:
        """The loaded backbone the job's options name (kept while the next job names the same)."""
        return self._model(self._options(job))

    def _options(self, job: Job) -> RunOptions:
        return RunOptions.given({**job.options, **({"device": self.device} if self.device else {})})

    # ------------------------------------------------------------------ records and summary
    def _record_path(self, job_id: str) -> Path:
        return self.records_dir / f"{job_id}.json"

    def _read_record(self, job_id: str) -> Record | None:
        try:
            return Record(**json.loads(self._record_path(job_id).read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None

    def _record(self, job: Job, record: Record) -> Record:
        write_json(self._record_path(job.id), vars(record))
        return record

    def write_summary(self) -> None:
        """batch.json, batch.csv and batch.index.png from every job's record (under a lock)."""
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
        from vidzero.media.pictures import index_sheet, read_png, write_png

        sheets = []
        for row in rows:
            sheet = Path(row["output"] + ".contact.png") if row.get("output") else None
            if row["status"] in ("done", "skipped") and sheet is not None and sheet.exists():
                sheets.append((row["id"], read_png(sheet)))
            if len(sheets) == limit:
                break
        if sheets:
            write_png(self.out_dir / "batch.index.png", index_sheet(sheets))


def run_batch(
    jobs: str | Path,
    output: str | Path,
    force: bool = False,
    quiet: bool = False,
    defaults: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    interactive: bool = False,
    pack: int = 1,
) -> list[Record]:
    """Run a job file as `vidzero batch` does (defaults: run options for every job; pack: jobs
    sampled at once, their model calls batched); returns this process's records."""
    from vidzero.runs.progress import LineProgress, RichRunProgress, make_bars

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{{option}} {out} is a file, not a folder", "output")
    RunOptions.given(defaults or {}).check()  # the command line's options: bad input before any folder
    if not 1 <= pack <= 64:
        raise BadInput(f"{{option}} must be 1 to 64, not {pack}", "pack")
    rank, world, device = distributed_rank()
    label = f"rank {rank}/{world}: " if world > 1 else ""
    parsed = read_jobs(jobs, out, defaults)
    bars = make_bars() if interactive and world == 1 and not quiet else None
    jobs_bar = bars.add_task("jobs", total=len(parsed)) if bars else None

    def progress(job: Job) -> Any:
        if quiet:
            return False
        return RichRunProgress(bars, job.id[:12]) if bars else LineProgress(label=f"{label}{job.id}")

    def on_job(done: int, total: int) -> None:
        if bars is not None and jobs_bar is not None:
            bars.update(jobs_bar, completed=done, total=total)

    def say(text: str) -> None:
        if bars is None and not quiet and log is not None:
            log(f"{label}{text}")

    runner = Batch(parsed, out, Path(jobs), force, rank, world, device, progress, say, on_job, pack)
    if bars is None:
        return runner.run()
    with bars:
        return runner.run()


def run_batch_command(
    jobs: Path,
    out: Path,
    defaults: dict[str, Any],
    force: bool,
    quiet: bool,
    log: Callable[[str], None],
    pack: int = 1,
) -> int:
    """`vidzero batch`: run the file, print the counts; returns the number of failed jobs."""
    from vidzero.runs.progress import is_interactive

    try:
        records = run_batch(jobs, out, force, quiet, defaults, log, interactive=is_interactive(), pack=pack)
    except KeyboardInterrupt:
        if not (out / RECORDS).is_dir():
            raise
        command = shlex.join(["vidzero", *sys.argv[1:]])  # jobs ran: what they made and saved is kept
        raise KeyboardInterrupt(
            f"interrupted; finished jobs and the saved state of unfinished ones are kept in {out}: "
            f"continue with  {command}"
        ) from None
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    rank, world, _ = distributed_rank()
    label = f"rank {rank}/{world}: " if world > 1 else ""
    log(
        f"{label}batch {jobs}: {counts['done']} done, {counts['skipped']} done before, "
        f"{counts['failed']} failed (this process); summary in {out / 'batch.csv'}"
    )
    return counts["failed"]
