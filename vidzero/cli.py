"""The `vidzero` command line: thin, it parses, calls the Python API and shows progress.

The run options are not written out here: every flag of a generating command is built from a
field of `vidzero.options.RunOptions` (name, type, default, help), so the CLI and the Python API
cannot drift apart, and both validate through `RunOptions.check`.

Exit codes: 0 success; 2 a problem with the user's input, environment or files (one line on
stderr, no traceback, nothing written); 130 interrupted (one line: what was kept and how to
resume); 1 a defect of vidzero (one line; VIDZERO_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vidzero.errors import BadInput, StopRun
from vidzero.options import RunOptions, python_fields

app = typer.Typer(
    name="vidzero",
    help="Zero-shot image-to-video, long video and more on a frozen text-to-video model (TI2V-Zero).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# RunOptions' annotations (strings, under `from __future__ import annotations`) -> CLI types
CLI_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "str | None": str | None,
    "int | None": int | None,
    "float | None": float | None,
    "Path | None": Path | None,
    "Any": str | None,
}


# ---------------------------------------------------------------- errors and interrupts
class Interrupted(Exception):
    pass


_current_output: list[Path] = []  # the output being written, for the interrupt message


def interrupted_message() -> str:
    if _current_output:
        from vidzero.runstate import state_paths

        state, partial = state_paths(_current_output[-1])
        if state.exists() and partial.exists():
            argv = [a for a in sys.argv[1:] if a != "--resume"]
            command = shlex.join(["vidzero", *argv, "--resume"])
            return f"interrupted; the frames made so far are kept in {partial.name}: continue with  {command}"
    return "interrupted; nothing was written"


def run_cli(body: Callable[[], None]) -> None:
    """Map errors to exit codes and one-line messages."""
    from vidzero.outputs import ENVIRONMENT_ERRNOS

    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *args, **kwargs: err.print(f"[yellow]warning:[/yellow] {message}")
            body()
    except BadInput as exc:
        err.print(f"[red]error:[/red] {exc.for_cli()}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(interrupted_message())
        raise typer.Exit(130) from None
    except StopRun as exc:
        err.print(f"stopped: {exc}")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS and not os.environ.get("VIDZERO_DEBUG"):
            where = f" ({exc.filename})" if exc.filename else ""
            err.print(f"[red]error:[/red] {ENVIRONMENT_ERRNOS[exc.errno]}{where}")
            raise typer.Exit(2) from None
        internal(exc)
    except MemoryError as exc:
        err.print(
            "[red]error:[/red] out of memory: fewer frames per window (--window), --vae-slice 1, or "
            "--offload model on a GPU"
        )
        raise typer.Exit(2) from exc
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
            err.print(
                "[red]error:[/red] the GPU ran out of memory: try --offload model, --attention-slicing, "
                "--forward-chunking 1 or --vae-slice 1"
            )
            raise typer.Exit(2) from None
        internal(exc)


def internal(exc: BaseException) -> None:
    if os.environ.get("VIDZERO_DEBUG"):
        raise exc
    err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} (set VIDZERO_DEBUG=1 for the traceback)")
    raise typer.Exit(1) from None


# ---------------------------------------------------------------- options from RunOptions
def run_option_params(defaults: dict[str, Any] | None = None, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword parameter per CLI-visible RunOptions field, typer-annotated."""
    defaults = defaults or {}
    params = []
    for f in dataclasses.fields(RunOptions):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = CLI_TYPES[str(f.type)]
        names = [flag, "-m"] if f.name == "model" else [flag]
        info = typer.Option(
            *names,
            help=f.metadata["help"],
            metavar=f.metadata.get("metavar"),
            show_default=True,
            rich_help_panel="Run options",
        )
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=defaults.get(f.name, f.default),
                annotation=Annotated[kind, info],
            )
        )
    return params


def cli_command(
    name: str,
    params: list[inspect.Parameter],
    epilog: str,
    help_text: str,
    run_options: bool = True,
    defaults: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> Callable:
    """Register `body(**values)` as command `name`, with `params` plus the run options."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        all_params = list(params) + (run_option_params(defaults, skip) if run_options else [])

        def command(**values: Any) -> None:
            run_cli(lambda: body(**values))

        command.__signature__ = inspect.Signature(sorted(all_params, key=lambda p: p.kind))
        command.__annotations__ = {p.name: p.annotation for p in all_params}
        command.__name__ = name.replace("-", "_")
        command.__doc__ = help_text
        app.command(name=name, epilog=epilog)(command)
        return body

    return register


def arg(name: str, kind: Any, help_text: str, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    info = typer.Argument(help=help_text, show_default=False)
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=Annotated[kind, info]
    )


def flag(
    name: str, kind: Any, help_text: str, default: Any = None, names: tuple[str, ...] = (), metavar: str | None = None
) -> inspect.Parameter:
    info = typer.Option(*(names or ("--" + name.replace("_", "-"),)), help=help_text, metavar=metavar)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])


OUTPUT = flag(
    "output", Path | None, "Output: .mp4, .webm, .gif, or a folder name for PNG frames.", names=("--output", "-o")
)
SAVING = [
    flag(
        "force", bool, "Replace a previous vidzero output of the same name (never a file vidzero did not write).", False
    ),
    flag("resume", bool, "Continue an interrupted run from OUTPUT's saved state (same parameters).", False),
    flag("quiet", bool, "No progress display.", False, names=("--quiet", "-q")),
    flag(
        "dry_run", bool, "Print the plan, its cost and an estimated time and memory, then exit without writing.", False
    ),
]
FRAMES_HELP = "Length in frames."
PROMPT_AT = flag(
    "prompt_at",
    list[str] | None,
    "N=TEXT: from frame N on, use this prompt (a schedule). Repeatable.",
    metavar="N=TEXT",
)


def run_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The RunOptions part of a command's values, with progress following --quiet."""
    names = {f.name for f in python_fields()}
    out = {k: v for k, v in values.items() if k in names}
    out["progress"] = not values.get("quiet", False)
    return out


def save_run(make_run: Callable[..., Any], values: dict[str, Any], **task_args: Any) -> None:
    """Plan the run (bad input fails here, before any model loads where possible), then save it."""
    output = values.get("output")
    if output is None:
        raise BadInput("give {option}", "output")
    from vidzero.io import check_codec
    from vidzero.outputs import check_destination, output_kind

    check_destination(output)  # before loading a model
    check_codec(output_kind(output), values.get("codec"), values.get("crf"))
    kwargs = run_kwargs(values)
    if values.get("dry_run"):
        from vidzero.planner import dry_run

        err.print(dry_run(make_run, task_args, kwargs))
        return
    quiet = values.get("quiet", False)
    spinner = err.status("loading the model and inputs", spinner="dots") if not quiet and err.is_terminal else None
    with spinner or contextlib.nullcontext():
        run = make_run(**task_args, **kwargs)
    _current_output.append(Path(output))
    if not quiet:
        announce(run)
    path = run.save(output, force=values["force"], resume=values["resume"])
    if run.complete_already:
        err.print(f"{path} is complete already: nothing to resume")
        return
    stats = run.engine.stats
    err.print(
        f"wrote {path} ({run.length - run.first_output} frames, {stats.cfg_evaluations} guided evaluations, "
        f"{stats.seconds:.1f} s); sidecars {path.name}.manifest.json, {path.name}.contact.png, {path.name}.report.png"
    )
    seams = (run.manifest_written or {}).get("report") or {}
    print_seams(seams.get("seams", []))


def print_seams(seams: list[dict], shown: int = 10) -> None:
    """The seams a quality report flagged, each with the reroll that regenerates it."""
    for seam in seams[:shown]:
        err.print(
            f"  seam at frame {seam['frame']} ({seam['signal']} {seam['value']:.2f}, around it "
            f"{seam['local_median']:.2f}): {seam['reroll']}"
        )
    if len(seams) > shown:
        err.print(f"  ... and {len(seams) - shown} more in the report")


def announce(run: Any) -> None:
    """Before a long run: its plan and, from the last run of the same configuration on this
    machine, an estimated time (no probe: that is what --dry-run is for)."""
    from vidzero.planner import recorded, timing_key

    bb = run.backbone
    evaluations = len(run.jobs) * run.engine.settings.evaluations()
    key = timing_key(bb.model_id, str(bb.device), str(bb.dtype).replace("torch.", ""), bb.frames, bb.height, bb.width)
    seconds = recorded(key).get("seconds")
    if seconds and seconds * evaluations >= 60:
        err.print(
            f"plan: {len(run.jobs)} windows, {evaluations} guided evaluations, about "
            f"{seconds * evaluations / 60:.0f} min on this machine (from its last run)"
        )


# ---------------------------------------------------------------- parsing helpers
def parse_position(text: str, sep: str, option: str, value_name: str = "PATH") -> tuple[int, str]:
    pos, found, value = text.partition(sep)
    import re

    if not found or not re.fullmatch(r"\s*[0-9]+\s*", pos) or not value.strip():
        raise BadInput(f"{{option}} {text!r} should look like N{sep}{value_name} (N a frame number)", option)
    return int(pos), value


def with_schedule(prompt: str, prompt_at: list[str] | None) -> str | dict[int, str]:
    if not prompt_at:
        return prompt
    table = {0: prompt}
    for item in prompt_at:
        frame, text = parse_position(item, "=", "prompt_schedule", "TEXT")
        if frame in table:
            raise BadInput(f"{{option}}: frame {frame} is given twice", "prompt_schedule")
        table[frame] = text
    return table


# ---------------------------------------------------------------- commands
@cli_command(
    "generate",
    [
        arg("prompt", str, "What the video shows."),
        OUTPUT,
        flag("frames", int | None, "Length (default: the model's window).", metavar="N"),
        PROMPT_AT,
        *SAVING,
    ],
    "Example: vidzero generate 'a red circle moving right' -o circle.mp4 --frames 32",
    "Plain text-to-video (no known frames): the reference the other tasks are measured against.",
)
def generate(**v: Any) -> None:
    from vidzero.tasks.generate import generate as task

    save_run(task, v, prompt=with_schedule(v["prompt"], v["prompt_at"]), frames=v["frames"])


@cli_command(
    "extend",
    [
        arg(
            "image",
            str | None,
            "The first frame (PNG, JPEG, ...); centre-cropped and resized to the model's size.",
            None,
        ),
        arg("prompt", str | None, "What happens next.", None),
        OUTPUT,
        flag(
            "from_state",
            Path | None,
            "Continue a finished run from its OUT.state.safetensors (then give only PROMPT, optionally).",
            names=("--from",),
            metavar="STATE",
        ),
        flag(
            "frames",
            int | None,
            "Total length including the image (default: the model's window); with --from, the number of new frames.",
            metavar="N",
        ),
        flag("loop", bool, "Make the last frame lead seamlessly back into the first.", False),
        PROMPT_AT,
        *SAVING,
    ],
    "Examples:\n\n  vidzero extend cat.png 'a cat turning its head' -o cat.mp4\n\n"
    "  vidzero extend start.png 'a red circle moving right' -o long.mp4 --frames 128",
    "Image-to-video, and long video by repeat-and-slide (frames stream to the output as they are made).",
)
def extend(**v: Any) -> None:
    from vidzero.tasks.extend import extend as task
    from vidzero.tasks.extend import extend_from

    if v["from_state"] is not None:
        if v["image"] is not None and v["prompt"] is not None:
            raise BadInput("with --from give at most a PROMPT (the frames come from the state)")
        save_run(extend_from, v, state=v["from_state"], prompt=v["prompt"] or v["image"], frames=v["frames"])
        return
    if v["image"] is None or v["prompt"] is None:
        raise BadInput("give IMAGE and PROMPT (or --from STATE)")
    extra = {"loop": True} if v["loop"] else {}
    save_run(task, v, image=v["image"], prompt=with_schedule(v["prompt"], v["prompt_at"]), frames=v["frames"], **extra)


@cli_command(
    "predict",
    [
        arg("clip", Path, "The real clip to continue (video file or folder of frames)."),
        arg("prompt", str, "What happens next."),
        OUTPUT,
        flag("frames", int, "Number of new frames.", 15, metavar="N"),
        flag("from_frame", int, "First frame of the part of the clip to continue from.", 0),
        flag("to_frame", int | None, "End (exclusive) of that part (default: the clip's end)."),
        flag("new_only", bool, "Write only the new frames, not the context.", False),
        *SAVING,
    ],
    "Example: vidzero predict clip.mp4 'the ball keeps rolling' -o more.mp4 --frames 32",
    "Continue a real clip: its last window-1 frames are the known prefix, then repeat-and-slide.",
    defaults={"fps": None},
)
def predict(**v: Any) -> None:
    from vidzero.tasks.predict import predict as task

    if v["fps"] is None:
        v["fps"] = RunOptions.fps  # the Python API then takes the clip's rate
    save_run(
        task,
        v,
        clip=v["clip"],
        prompt=v["prompt"],
        frames=v["frames"],
        from_frame=v["from_frame"],
        to_frame=v["to_frame"],
        new_only=v["new_only"],
    )


@cli_command(
    "infill",
    [
        arg("args", list[str], "[START END] PROMPT: two images for the ends, or only the prompt with --key/--clip."),
        OUTPUT,
        flag("frames", int, "Total length of the timeline.", 16, metavar="N"),
        flag("key", list[str] | None, "N=IMAGE: a known frame at position N. Repeatable.", metavar="N=IMAGE"),
        flag("clip", list[str] | None, "N:VIDEO: a real clip placed from position N. Repeatable.", metavar="N:VIDEO"),
        flag("order", str, "Fill gaps 'inward' (from both ends) or 'forward' (left to right).", "inward"),
        flag("loop", bool, "Treat the timeline as a circle: the last frame leads into the first.", False),
        PROMPT_AT,
        *SAVING,
    ],
    "Examples:\n\n  vidzero infill start.png end.png 'a red circle moving right' -o mid.mp4 --frames 16\n\n"
    "  vidzero infill 'a red circle moving right' -o t.mp4 --frames 41 --key 0=a.png --key 20=b.png",
    "Fill the frames between known frames (two ends, keyframes, placed clips) zero-shot.",
)
def infill(**v: Any) -> None:
    from vidzero.tasks.infill import Keyframes
    from vidzero.tasks.infill import infill as task

    args = v["args"]
    if len(args) not in (1, 3):
        raise BadInput("give START END PROMPT, or PROMPT with --key/--clip")
    *ends, prompt = args
    frames = v["frames"]
    if frames < 2:
        raise BadInput(f"{{option}} must be at least 2, got {frames}", "frames")
    keys: dict[int, str] = {}
    for item in v["key"] or []:
        pos, image = parse_position(item, "=", "keys")
        if pos in keys:
            raise BadInput(f"{{option}}: two keys at frame {pos}", "keys")
        keys[pos] = image
    for pos, image in zip((0, frames - 1), ends):
        if pos in keys:
            raise BadInput(
                f"{{option}} at frame {pos} and the {'START' if pos == 0 else 'END'} image: two keys at one frame",
                "keys",
            )
        keys[pos] = image
    clips: dict[int, str] = {}
    for item in v["clip"] or []:
        pos, clip = parse_position(item, ":", "clips", "VIDEO")
        if pos in clips:
            raise BadInput(f"{{option}}: two clips at frame {pos}", "clips")
        clips[pos] = clip
    extra = {"loop": True} if v["loop"] else {}
    save_run(
        task,
        v,
        timeline=Keyframes(frames, keys, clips),
        prompt=with_schedule(prompt, v["prompt_at"]),
        order=v["order"],
        **extra,
    )


@cli_command(
    "deflicker",
    [
        arg("clip", Path, "Video file or folder of frames."),
        OUTPUT,
        flag(
            "anchor",
            list[int] | None,
            "Index of a known frame: kept unchanged, pulls its neighbours' colours. Repeatable.",
        ),
        flag("window", int, "Frames on each side for the temporal median of colour statistics.", 4),
        flag("temporal", float, "Weight of the flow-warped previous frame (0 turns it off).", 0.5),
        flag("flow", str, "Optical flow: dis, farneback or none.", "dis"),
        flag("report_only", bool, "Only measure: write CLIP.flicker.json and CLIP.flicker.png.", False),
        flag("force", bool, "Replace a previous vidzero output or report.", False),
    ],
    "Examples:\n\n  vidzero deflicker in.mp4 -o out.mp4 --anchor 0\n\n  vidzero deflicker in.mp4 --report-only",
    "Remove brightness/colour flicker and jitter from a clip; write a flicker report (JSON + plot).",
    run_options=False,
)
def deflicker(**v: Any) -> None:
    from vidzero.flicker import DeflickerSettings
    from vidzero.tasks.deflicker import deflicker_clip, report_clip

    if v["report_only"]:
        r = report_clip(v["clip"], force=v["force"])
        err.print(
            f"flicker index {r['flicker_index']:.4f}, colour {r['colour_flicker_index']:.4f}, "
            f"warp error {r['warp_error']:.3f} ({r['frames']} frames)"
        )
        return
    if v["output"] is None:
        raise BadInput("give {option} (or --report-only)", "output")
    settings = DeflickerSettings(window=v["window"], temporal=v["temporal"], flow=v["flow"])
    with err.status("deflickering") if err.is_terminal else contextlib.nullcontext():
        summary = deflicker_clip(v["clip"], v["output"], v["anchor"] or [], settings, force=v["force"])
    err.print(
        f"wrote {v['output']}: flicker index {summary['input']['flicker_index']:.4f} -> "
        f"{summary['output']['flicker_index']:.4f}, warp error {summary['input']['warp_error']:.3f} -> "
        f"{summary['output']['warp_error']:.3f}"
    )


@cli_command(
    "info",
    [
        arg("model", str, "'shapes', a diffusers folder, or a hub id in the local cache.", "shapes"),
        flag("revision", str | None, "Hub revision in the cache."),
        flag("cache_dir", Path | None, "Hugging Face cache folder."),
        flag("variant", str | None, "Weight file variant (default: found from the files)."),
        flag("as_json", bool, "Print JSON.", False, names=("--json",)),
    ],
    "Example: vidzero info shapes",
    "A checkpoint's components, sizes and native window, from its configs and file headers (no weights loaded).",
    run_options=False,
)
def info(**v: Any) -> None:
    from vidzero.checkpoint import inspect_checkpoint

    desc = inspect_checkpoint(
        v["model"], cache_dir=v["cache_dir"], revision=v["revision"], variant=v["variant"]
    ).summary()
    if v["as_json"]:
        typer.echo(json.dumps(desc, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"vidzero info {v['model']}", show_header=False)
    for key, value in desc.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    Console().print(table)


@cli_command(
    "reroll",
    [
        arg("run", Path, "A finished vidzero output (its manifest says how it was made)."),
        flag("frames", str | None, "A-B: the frames to regenerate (output frame numbers, inclusive).", metavar="A-B"),
        OUTPUT,
        flag("seed", int | None, "Seed of the new frames (default: the run's seed + 1)."),
        flag("prompt", str | None, "A new prompt for the new frames (default: the run's at frame A)."),
        flag("device", str, "cpu, cuda, cuda:N or auto.", "auto"),
        flag("dtype", str | None, "fp32, fp16 or bf16 (default: fp16 on CUDA, fp32 on the CPU)."),
        *SAVING,
    ],
    "Example: vidzero reroll out.mp4 --frames 40-47 -o out-fixed.mp4 --seed 3",
    "Regenerate frames A..B of a finished run between the frames kept on both sides, with the run's own "
    "settings (its manifest); every other frame is kept.",
    run_options=False,
)
def reroll(**v: Any) -> None:
    from vidzero.tasks.reroll import reroll as task

    if v["frames"] is None:
        raise BadInput("give {option} A-B", "frames")
    save_run(lambda **kw: task(v["run"], v["frames"], prompt=v["prompt"], **kw), v)  # seed, device, dtype: in kw


@cli_command(
    "report",
    [
        arg("video", Path, "A clip (video file or folder of frames), vidzero's or any other."),
        flag("force", bool, "Replace a previous vidzero report.", False),
    ],
    "Example: vidzero report out.mp4",
    "Write VIDEO.report.json and VIDEO.report.png: per-frame flicker, motion, change, colour drift and "
    "distance to known frames, and the seams that stand out, each with the reroll command that fixes it.",
    run_options=False,
)
def report(**v: Any) -> None:
    from vidzero.tasks.report import report_clip

    r = report_clip(v["video"], force=v["force"])
    s = r["summary"]
    err.print(
        f"{r['frames']} frames: flicker index {s['flicker_index']:.3f}, median step {s['median_step']:.2f} px, "
        f"max colour drift {s['max_colour_drift']:.1f} dE, {s['seams']} seam(s)"
    )
    print_seams(r["seams"])


@cli_command(
    "batch",
    [
        arg("jobs", Path, "Job file: JSON Lines (one job object per line) or CSV (one job per row)."),
        flag(
            "output",
            Path | None,
            "Folder for every job's output, manifest, contact sheet and state; "
            "batch.json, batch.csv and batch.index.png summarise the batch.",
            names=("--output", "-o"),
        ),
        flag("force", bool, "Rerun jobs that are done already (their outputs are the batch's own).", False),
        flag("quiet", bool, "No progress display.", False, names=("--quiet", "-q")),
    ],
    "Examples:\n\n  vidzero batch jobs.jsonl -o out/\n\n  torchrun --nproc_per_node 8 -m vidzero.cli batch "
    "jobs.jsonl -o out/   # one process per GPU",
    "Run every job of a job file (any task, each with its own inputs and options): resumable, skips what is "
    "done, records failures and goes on; several processes (one per GPU, or machines sharing the folder) "
    "split the jobs.",
    defaults={f.name: None for f in dataclasses.fields(RunOptions)},
)
def batch(**v: Any) -> None:
    from vidzero.batch import Batch, distributed_rank, read_jobs
    from vidzero.outputs import check_parent
    from vidzero.progress import LineProgress, RichRunProgress, is_interactive, make_bars

    if v["output"] is None:
        raise BadInput("give {option} (a folder)", "output")
    out = Path(v["output"])
    if out.exists() and not out.is_dir():
        raise BadInput(f"{{option}} {out} is a file, not a folder", "output")
    check_parent(out)
    names = {f.name for f in python_fields()}
    defaults = {k: val for k, val in v.items() if k in names and val is not None}
    jobs = read_jobs(v["jobs"], out, defaults)
    rank, world, device = distributed_rank()
    label = f"rank {rank}/{world}: " if world > 1 else ""
    quiet, interactive = v["quiet"], is_interactive() and world == 1
    bars = make_bars() if interactive and not quiet else None
    jobs_bar = bars.add_task("jobs", total=len(jobs)) if bars else None

    def progress(job: Any) -> Any:
        if quiet:
            return False
        return RichRunProgress(bars, job.id[:12]) if bars else LineProgress(label=f"{label}{job.id}")

    def log(text: str) -> None:
        if bars is None and not quiet:
            err.print(f"{label}{text}")

    def on_job(done: int, total: int) -> None:
        if bars is not None:
            bars.update(jobs_bar, completed=done, total=total)

    runner = Batch(
        jobs,
        out,
        Path(v["jobs"]),
        force=v["force"],
        rank=rank,
        world=world,
        device=device,
        progress=progress,
        log=log,
        on_job=on_job,
    )
    with bars or contextlib.nullcontext():
        records = runner.run()
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    err.print(
        f"{label}batch {v['jobs']}: {counts['done']} done, {counts['skipped']} done before, "
        f"{counts['failed']} failed (this process); summary in {out / 'batch.csv'}"
    )
    if counts["failed"]:
        raise typer.Exit(3)  # the batch finished, some jobs failed (see the summary)


def main() -> None:
    try:
        app(prog_name="vidzero")
    except KeyboardInterrupt:  # outside a command (while parsing or importing)
        err.print("interrupted; nothing was written")
        sys.exit(130)


if __name__ == "__main__":
    main()
