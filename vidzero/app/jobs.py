"""Job files: every job line read into a job (its task, inputs, options, output), checked before
anything runs. The schema is the task table's: a line holds a task's input fields and the run
options under their table names (vidzero.tasks, vidzero.runs.options), and becomes the same
`RunSpec` the CLI and the Python API build."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidzero.errors import BadInput
from vidzero.media.outputs import check_input_file, check_path_text, resolved, run_sidecars
from vidzero.runs.options import NOT_RECORDED, option_fields
from vidzero.runs.spec import RunSpec
from vidzero.tasks import TASKS, read_inputs, spec_from_fields, task_of

JOB_KEYS = {"task", "id", "output", "format"}
OPTION_KEYS = {f.name for f in option_fields()} - set(NOT_RECORDED)
PATH_INPUTS = {"image", "clip", "from_state", "run", "start", "end"}  # input fields that name one file
PATH_MAPS = {"keys", "clips"}  # input fields {position: file}
PATH_LISTS = {"mask"}  # input fields that list files (one mask per motion path)
SUGAR = {"infill": {"start", "end"}}  # job-line names a task's inputs read (InfillInputs.from_record)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@dataclass
class Job:
    index: int
    line: int
    id: str
    task: str
    inputs: dict[str, Any]  # the task's inputs record, paths resolved against the job file
    options: dict[str, Any]  # run options: the job's over the batch's defaults
    output: Path  # inside the batch folder

    def spec(self, device: str | None = None) -> RunSpec:
        """The job's checked spec (its input files are read here, when it runs)."""
        options = dict(self.options)
        if device is not None and "device" not in options:
            options["device"] = device
        return spec_from_fields(self.task, self.inputs, options)


def job_keys(task: str) -> set[str]:
    """Every name a job line of this task may hold: the schema the task table makes."""
    t = task_of(task)
    names = {f.name for f in dataclasses.fields(t.inputs)} | SUGAR.get(task, set()) | JOB_KEYS
    return names | OPTION_KEYS if t.generates else names


# ---------------------------------------------------------------------- reading job files
def read_jobs(path: str | Path, out_dir: str | Path, defaults: dict[str, Any] | None = None) -> list[Job]:
    """Every job of a job file, checked before anything runs: lines, tasks, names, ids, and the
    outputs (inside the batch folder once links are followed, none written by two jobs). Input
    problems of one job (a missing image) are found when the job runs, and fail it alone."""
    path = Path(path)
    check_input_file(path, "job file")
    if not path.is_file():
        raise BadInput(f"job file not found: {path}", "jobs")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read job file {path}: {type(exc).__name__}", "jobs") from None
    rows, file_defaults = read_csv(text, path) if path.suffix.lower() == ".csv" else read_jsonl(text, path)
    base = {**file_defaults, **(defaults or {})}
    out_dir = Path(out_dir)
    jobs: list[Job] = []
    for number, (line, row) in enumerate(rows):
        task = row.get("task", base.get("task"))
        if not isinstance(task, str) or task not in TASKS:
            raise BadInput(f"line {line}: unknown task {task!r} (use {', '.join(TASKS)})", "jobs")
        # defaults reach the jobs whose task takes them (a model default means nothing to deflicker)
        merged = {**{k: v for k, v in base.items() if k in job_keys(task)}, **row, "task": task}
        jobs.append(make_job(number, line, task, merged, path.parent, out_dir))
    if not jobs:
        raise BadInput(f"{path} holds no jobs", "jobs")
    check_outputs(jobs, out_dir, path)
    return jobs


def read_jsonl(text: str, path: Path) -> tuple[list[tuple[int, dict]], dict]:
    rows: list[tuple[int, dict]] = []
    defaults: dict = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
            raise BadInput(f"{path}:{line_number}: not valid JSON ({reason})", "jobs") from None
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


def make_job(number: int, line: int, task: str, values: dict[str, Any], base: Path, out_dir: Path) -> Job:
    where = f"line {line}"
    unknown = sorted(set(values) - job_keys(task))
    if unknown:
        raise BadInput(f"{where}: {task} takes no {unknown[0]!r}", "jobs")
    inputs = {k: v for k, v in values.items() if k not in JOB_KEYS | OPTION_KEYS}
    options = {k: v for k, v in values.items() if k in OPTION_KEYS}
    for key in PATH_INPUTS & set(inputs):
        inputs[key] = resolve(base, inputs[key], where)
    for key in PATH_LISTS & set(inputs):
        listed = [inputs[key]] if isinstance(inputs[key], str) else inputs[key]
        if not isinstance(listed, list):
            raise BadInput(f"{where}: {key} must be a file name or a list of them", "jobs")
        inputs[key] = [resolve(base, v, where) for v in listed]
    for key in PATH_MAPS & set(inputs):
        if not isinstance(inputs[key], dict):
            raise BadInput(f"{where}: {key} must be an object {{frame: path}}", "jobs")
        inputs[key] = {k: resolve(base, v, where) for k, v in inputs[key].items()}
    try:  # the inputs' structure now; their files when the job runs
        parsed = read_inputs(task, inputs)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}", "jobs") from None
    missing = parsed.missing() if hasattr(parsed, "missing") else None
    if missing:
        raise BadInput(f"{where}: {task} needs {missing!r}", "jobs")
    job_id = str(values.get("id") or derived_id(task, inputs, number))
    if not ID_PATTERN.match(job_id):
        raise BadInput(f"{where}: job id {job_id!r} must be letters, digits, '.', '_' or '-'", "jobs")
    if "output" in values:
        name = Path(checked_name(str(values["output"]), where))
        if name.is_absolute() or ".." in name.parts or not name.parts:
            raise BadInput(f"{where}: output must be a name inside the batch folder", "jobs")
        output = out_dir / name
    else:
        fmt = str(values.get("format", "mp4")).lstrip(".")
        output = out_dir / (job_id if fmt in ("", "png", "frames") else f"{job_id}.{fmt}")
    return Job(number, line, job_id, task, inputs, options, output)


def resolve(base: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadInput(f"{where}: file names must be text, got {value!r}", "jobs")
    checked_name(value, where)
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def checked_name(value: str, where: str) -> str:
    """A file name from a job line that a file system and the records can hold."""
    try:
        check_path_text(value, "file name")
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}", "jobs") from None
    return value


def derived_id(task: str, inputs: dict[str, Any], number: int) -> str:
    """An id from the job's inputs (the image or clip file name), else its place in the file."""
    source = inputs.get("image") or inputs.get("clip") or inputs.get("start") or inputs.get("run")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(source).stem)[:80] if source else ""
    return f"{stem}-{task}" if stem else f"job-{number:05d}"


def check_outputs(jobs: list[Job], out_dir: Path, path: Path) -> None:
    """Every job writes inside the batch folder once links are followed, and no file (output or
    sidecar) is written by two jobs; ids are unique (they name the jobs' records)."""
    folder = resolved(out_dir)
    ids: dict[str, int] = {}
    owners: dict[Path, Job] = {}
    for job in jobs:
        if job.id in ids:
            raise BadInput(
                f"{path}:{job.line}: job id {job.id!r} is also the id of the job on line {ids[job.id]}", "jobs"
            )
        ids[job.id] = job.line
        target = resolved(job.output)
        if target.parent != folder and folder not in target.parents:
            raise BadInput(
                f"{path}:{job.line}: output {job.output} resolves to {target}, outside the batch folder", "jobs"
            )
        for written in (target, *(resolved(s) for s in run_sidecars(job.output))):
            other = owners.get(written)
            if other is not None:
                raise BadInput(
                    f"{path}:{job.line}: job {job.id!r} would write {written.name}, which the job on line "
                    f"{other.line} ({other.id!r}) writes too",
                    "jobs",
                )
            owners[written] = job
