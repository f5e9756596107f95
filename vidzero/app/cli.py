"""The `vidzero` command line, made from the task table and the option table.

Every task of `vidzero.tasks.TASKS` is a command: its parameters are the task's input fields
(with their help text and command-line form) and, for the tasks that run a model, the run
options of `vidzero.runs.options.RunOptions`; the values become the task's inputs and a
`RunOptions`, and from there the run is the one the Python API and a batch job line start
(`vidzero.tasks.build_spec`, `vidzero.tasks.start`). `report`, `info`, `batch` and `studio` are
written here; the module runs over 400 lines because it holds the wiring of each of those
commands, kept beside the exit codes they share.

Exit codes: 0 success; 2 a problem with the user's input, environment or files (one line on
stderr, no traceback, nothing written); 130 interrupted (one line: what was kept and how to
resume); 1 a defect of vidzero (one line; VIDZERO_DEBUG=1 shows the traceback); 3 a batch that
finished with failed jobs.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from vidzero.app.commands import (
    DEFLICKER_ONLY,
    SAVING,
    examples,
    input_parameters,
    inputs_from,
    option_parameters,
    options_from,
    parameter,
    register,
)
from vidzero.errors import BadInput, StopRun
from vidzero.media.outputs import (
    PARTIAL,
    STATE,
    check_destination,
    check_parent,
    environment_message,
    output_kind,
    sidecar,
)
from vidzero.runs.options import option_fields
from vidzero.tasks import TASKS, Task, build_spec, start

# click's UsageError, whichever copy of click typer parses with (newer typer carries its own)
UsageError: type[Exception] = typer.BadParameter.__bases__[0]


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) as one line and status 2, like
    every other input vidzero refuses, instead of click's usage box."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `vidzero` alone: the help
                Console(stderr=True).print(exc.ctx.get_help())  # type: ignore[attr-defined]
                sys.exit(2)
            message = exc.format_message()  # type: ignore[attr-defined]
            option = str(getattr(exc, "option_name", "") or "")
            if message.startswith("No such option") and not option.startswith("--"):
                message += " (a PROMPT that starts with '-' goes after '--': vidzero extend IMAGE -- '-PROMPT')"
            err.print(f"[red]error:[/red] {message}")
            sys.exit(2)
        except typer.Abort:  # Ctrl-C while parsing: main() says so
            raise KeyboardInterrupt from None
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="vidzero",
    cls=OneLineErrors,
    help="Zero-shot image-to-video, long video and more on a frozen text-to-video model (TI2V-Zero).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- errors and interrupts
NOTHING_WRITTEN = "interrupted; nothing was written"
_current_output: list[Path] = []  # the output being written, for the interrupt message


def interrupted_message(exc: KeyboardInterrupt) -> str:
    if exc.args:  # a command that knows what it kept says so (vidzero batch)
        return str(exc.args[0])
    if _current_output:
        state, partial = sidecar(_current_output[-1], STATE), sidecar(_current_output[-1], PARTIAL)
        if state.exists() and partial.exists():
            argv = [a for a in sys.argv[1:] if a != "--resume"]
            command = shlex.join(["vidzero", *argv, "--resume"])
            return f"interrupted; the frames made so far are kept in {partial.name}: continue with  {command}"
    return NOTHING_WRITTEN


def run_cli(body: Callable[[], None]) -> None:
    """Map errors to exit codes and one-line messages."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *args, **kwargs: err.print(f"[yellow]warning:[/yellow] {message}")
            body()
    except BadInput as exc:
        err.print(f"[red]error:[/red] {exc.for_cli()}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        err.print(interrupted_message(exc))
        raise typer.Exit(130) from None
    except StopRun as exc:
        err.print(f"stopped: {exc}")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except OSError as exc:
        line = environment_message(exc)
        if line is not None and not os.environ.get("VIDZERO_DEBUG"):
            err.print(f"[red]error:[/red] {line}")
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


def command(name: str, params: list[inspect.Parameter], help_text: str, epilog: str, body: Callable[..., None]) -> None:
    """A command whose errors become exit codes and one-line messages (run_cli)."""
    register(app, name, params, help_text, epilog, lambda values: run_cli(lambda: body(values)))


# ---------------------------------------------------------------- running a task
def run_task(task: Task, values: dict[str, Any]) -> None:
    """Build the spec (bad input fails here, before any model loads where possible), then save."""
    output = values.get("output")
    if output is None:
        raise BadInput("give {option}", "output")
    from vidzero.media.video import check_codec  # PyAV: not on `vidzero --help`

    check_destination(output)  # before loading a model
    check_codec(output_kind(output), values.get("codec"), values.get("crf"), values.get("fps"))
    options, given = options_from(values)
    spec = build_spec(inputs_from(task, values), options, given)
    if values.get("dry_run"):
        from vidzero.app.planner import dry_run  # torch: not on `vidzero --help`

        err.print(dry_run(spec))
        return
    quiet = values.get("quiet", False)
    spinner = err.status("loading the model and inputs", spinner="dots") if not quiet and err.is_terminal else None
    with spinner or contextlib.nullcontext():
        run = start(spec)
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


def print_seams(seams: list[dict]) -> None:
    from vidzero.quality.report import seam_lines  # numpy and OpenCV: not on `vidzero --help`

    for line in seam_lines(seams):
        err.print(line)


def announce(run: Any) -> None:
    """Before a long run: its plan and, from the last run of the same configuration on this
    machine, an estimated time (no probe: that is what --dry-run is for)."""
    from vidzero.runs.timings import key_for, recorded

    cost = run.cost()
    seconds = recorded(key_for(run.backbone)).get("seconds")
    if seconds and seconds * cost.work >= 60:
        err.print(
            f"plan: {cost.windows} windows, {cost.evaluations} guided evaluations, about "
            f"{seconds * cost.work / 60:.0f} min on this machine (from its last run)"
        )


def run_deflicker(task: Task, values: dict[str, Any]) -> None:
    from vidzero.tasks.deflicker import deflicker_clip, report_clip

    inputs = inputs_from(task, values)
    if values["report_only"]:
        r = report_clip(inputs.clip, force=values["force"])
        err.print(
            f"flicker index {r['flicker_index']:.4f}, colour {r['colour_flicker_index']:.4f}, "
            f"warp error {r['warp_error']:.3f} ({r['frames']} frames)"
        )
        return
    if values["output"] is None:
        raise BadInput("give {option} (or --report-only)", "output")
    with err.status("deflickering") if err.is_terminal else contextlib.nullcontext():
        summary = deflicker_clip(inputs, values["output"], force=values["force"])
    err.print(
        f"wrote {values['output']}: flicker index {summary['input']['flicker_index']:.4f} -> "
        f"{summary['output']['flicker_index']:.4f}, warp error {summary['input']['warp_error']:.3f} -> "
        f"{summary['output']['warp_error']:.3f}"
    )


for _task in TASKS.values():
    if _task.generates:
        command(
            _task.name,
            [*input_parameters(_task), *SAVING, *option_parameters()],
            _task.summary,
            examples(_task),
            lambda values, task=_task: run_task(task, values),
        )
    else:
        command(
            _task.name,
            [*input_parameters(_task), *DEFLICKER_ONLY],
            _task.summary,
            examples(_task),
            lambda values, task=_task: run_deflicker(task, values),
        )


# ---------------------------------------------------------------- commands that are not tasks
def info(values: dict[str, Any]) -> None:
    from vidzero.models.checkpoint import inspect_checkpoint

    desc = inspect_checkpoint(
        values["model"], cache_dir=values["cache_dir"], revision=values["revision"], variant=values["variant"]
    ).summary()
    if values["as_json"]:
        typer.echo(json.dumps(desc, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"vidzero info {values['model']}", show_header=False)
    for key, value in desc.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    Console().print(table)


command(
    "info",
    [
        parameter("model", str, "'shapes', a diffusers folder, or a hub id in the local cache.", "argument", "shapes"),
        parameter("revision", str | None, "Hub revision in the cache.", "option", None),
        parameter("cache_dir", Path | None, "Hugging Face cache folder.", "option", None),
        parameter("variant", str | None, "Weight file variant (default: found from the files).", "option", None),
        parameter("as_json", bool, "Print JSON.", "option", False, ("--json",)),
    ],
    "A checkpoint's components, sizes and native window, from its configs and file headers (no weights loaded).",
    "Example: vidzero info shapes",
    info,
)


def report(values: dict[str, Any]) -> None:
    from vidzero.app.clip_report import report_clip

    r = report_clip(values["video"], force=values["force"])
    s = r["summary"]
    err.print(
        f"{r['frames']} frames: flicker index {s['flicker_index']:.3f}, median step {s['median_step']:.2f} px, "
        f"max colour drift {s['max_colour_drift']:.1f} dE, {s['seams']} seam(s)"
    )
    print_seams(r["seams"])


command(
    "report",
    [
        parameter(
            "video",
            Path,
            "A clip (video file or folder of frames), vidzero's or any other.",
            "argument",
            inspect.Parameter.empty,
        ),
        parameter("force", bool, "Replace a previous vidzero report.", "option", False),
    ],
    "Write VIDEO.report.json and VIDEO.report.png: per-frame flicker, motion, change, colour drift and "
    "distance to known frames, and the seams that stand out, each with the reroll command that fixes it.",
    "Example: vidzero report out.mp4",
    report,
)


def batch(values: dict[str, Any]) -> None:
    from vidzero.app.batch import run_batch_command

    if values["output"] is None:
        raise BadInput("give {option} (a folder)", "output")
    out = Path(values["output"])
    if out.exists() and not out.is_dir():
        raise BadInput(f"{{option}} {out} is a file, not a folder", "output")
    check_parent(out)
    defaults, _ = options_from(values)
    given = {
        f.name: getattr(defaults, f.name) for f in option_fields(cli=True) if values.get(f.name) not in (None, False)
    }
    failed = run_batch_command(
        values["jobs"], out, given, force=values["force"], quiet=values["quiet"], log=err.print, pack=values["pack"]
    )
    if failed:
        raise typer.Exit(3)  # the batch finished, some jobs failed (see the summary)


command(
    "batch",
    [
        parameter(
            "jobs",
            Path,
            "Job file: JSON Lines (one job object per line) or CSV (one job per row).",
            "argument",
            inspect.Parameter.empty,
        ),
        parameter(
            "output",
            Path | None,
            "Folder for every job's output, manifest, contact sheet and state; batch.json, batch.csv and "
            "batch.index.png summarise the batch.",
            "option",
            None,
            ("--output", "-o"),
        ),
        parameter(
            "force", bool, "Rerun jobs that are done already (their outputs are the batch's own).", "option", False
        ),
        parameter(
            "pack",
            int,
            "Jobs sampled at once (1-64), in threads sharing one model: their windows go through the model "
            "in one batched call, more windows per second on a GPU; frames match an unpacked run's up to "
            "the rounding of a larger batch.",
            "option",
            1,
        ),
        parameter("quiet", bool, "No progress display.", "option", False, ("--quiet", "-q")),
        *option_parameters(),
    ],
    "Run every job of a job file (any task, each with its own inputs and options): resumable, skips what is "
    "done, records failures and goes on; several processes (one per GPU, or machines sharing the folder) "
    "split the jobs. Run options given here are every job's defaults.",
    "Examples:\n\n  vidzero batch jobs.jsonl -o out/\n\n  torchrun --nproc_per_node 8 -m vidzero.app.cli batch "
    "jobs.jsonl -o out/   # one process per GPU",
    batch,
)


def studio(values: dict[str, Any]) -> None:
    import time

    from vidzero.app.studio import Studio
    from vidzero.app.studio_server import free_port, require_gradio, serve, served_url
    from vidzero.models.checkpoint import inspect_checkpoint

    port = free_port(values["port"])  # bad input, before anything is made
    inspect_checkpoint(values["model"])
    require_gradio(values["outputs"])
    studio = Studio(values["outputs"], values["model"], values["device"])
    page = serve(studio, port, values["share"])
    outputs = Path(values["outputs"]).resolve()
    err.print(f"vidzero studio: {served_url(page)} (outputs in {outputs}); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(studio_stopped(studio)) from None
    finally:
        page.close()


def studio_stopped(studio: Any) -> str:
    """What Ctrl-C on the studio leaves: the videos it finished, and a run it cut short."""
    made = studio.made_here()
    text = f"studio stopped; {len(made)} video(s) made in {studio.outputs}" if made else "studio stopped; no video made"
    current = studio.current
    if current is not None and current.running:
        text += f"; the run of {current.output.name} was cut short: Resume on the page continues it"
    return text


command(
    "studio",
    [
        parameter(
            "outputs", Path, "Folder the page writes every run to (and serves from).", "option", Path("vidzero-studio")
        ),
        parameter("model", str, "'shapes', a diffusers folder, or a hub id in the local cache.", "option", "shapes"),
        parameter("device", str, "cpu, cuda, cuda:N or auto.", "option", "auto"),
        parameter("port", int | None, "Port on 127.0.0.1 (default: a free one, printed).", "option", None),
        parameter("share", bool, "Also serve through a public Gradio link (off unless given).", "option", False),
    ],
    "The local web editor: image to video, keyframes, reroll, continue, deflicker and report, on the same runs "
    "as the CLI (needs the optional studio extra, see docs/studio.md).",
    "Example: vidzero studio --outputs my-videos",
    studio,
)


def main() -> None:
    try:
        app(prog_name="vidzero")
    except KeyboardInterrupt:  # outside a command (while parsing or importing)
        err.print(NOTHING_WRITTEN)
        sys.exit(130)


if __name__ == "__main__":
    main()
