"""The `vidzero` command line: thin, it parses, calls the Python API and shows progress.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 internal error
(one line; set VIDZERO_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidzero.errors import BadInput

app = typer.Typer(
    name="vidzero",
    help="Zero-shot image-to-video, long video and more on a frozen text-to-video model (TI2V-Zero).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

# ---------------------------------------------------------------- shared options
Model = Annotated[str, typer.Option("--model", "-m", help="Checkpoint: 'shapes' (embedded), a diffusers folder, or a hub id in the local cache.")]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")]
Dtype = Annotated[str, typer.Option(help="UNet/text-encoder precision: fp32, fp16 (GPU) or bf16; the VAE stays fp32.")]
Steps = Annotated[int, typer.Option(help="DDIM steps per window.")]
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale w.")]
Seed = Annotated[int, typer.Option(help="Run seed; every window's seed derives from it (recorded in the manifest).")]
Eta = Annotated[float, typer.Option(help="DDIM eta (0: deterministic DDIM).")]
Queue = Annotated[str, typer.Option(help="Queue generated frames as 'pixel' (release: decode, re-encode) or 'latent'.")]
Init = Annotated[str, typer.Option(help="New-slot init: 'inversion' (DDPM inversion of the nearest known frame) or 'random'.")]
PerWindow = Annotated[int, typer.Option("--new-per-window", help="Frames generated per sampling run (1: the paper's; k: k times fewer UNet calls). For infill, 4 was also more accurate on the shapes bench (docs/tasks.md).")]
Fps = Annotated[float, typer.Option(help="Frame rate of the output.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Output: .mp4, .webm, .gif, or a folder name for PNG frames.")]
Negative = Annotated[str, typer.Option(help="Negative prompt (the unconditional branch); default empty, as the release.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Window = Annotated[int | None, typer.Option(help="Frames per window (default: the checkpoint's native length, e.g. 16 ModelScope, 24 zeroscope).")]
Height = Annotated[int | None, typer.Option(help="Frame height in pixels (default: the checkpoint's).")]
Width = Annotated[int | None, typer.Option(help="Frame width in pixels (default: the checkpoint's).")]
PromptAt = Annotated[list[str] | None, typer.Option("--prompt-at", help="N=TEXT: from frame N on, use this prompt (a schedule). Repeatable.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from OUTPUT's saved state (same parameters).")]
Deflick = Annotated[bool, typer.Option("--deflicker", help="Deflicker the frames before writing (known frames are kept as anchors).")]


class RichProgress:
    """Two bars: frames (windows) of the video and DDIM steps of the current window."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.jobs = progress.add_task("windows", total=None)
        self.steps = progress.add_task("steps", total=None)

    def job(self, done: int, total: int) -> None:
        self.progress.update(self.jobs, completed=done, total=total)
        self.progress.reset(self.steps)

    def step(self, done: int, total: int) -> None:
        self.progress.update(self.steps, completed=done, total=total)


def progress_bars(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err, disable=quiet, transient=False,
    )


def run_cli(body: Callable[[], None]) -> None:
    """Map errors to exit codes and one-line messages."""
    try:
        body()
    except BadInput as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; no output was written")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("VIDZERO_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} (set VIDZERO_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def save_run(make_run: Callable[..., object], output: Path, force: bool, quiet: bool, resume: bool = False, **kwargs) -> None:
    from vidzero.io import check_output, sidecar_paths

    check_output(output, force)  # fail before loading a model
    with err.status("loading the model and inputs", spinner="dots") if not quiet else contextlib.nullcontext():
        run = make_run(**kwargs)  # bad input fails here, before any progress bar is drawn
    with progress_bars(quiet) as bars:
        run.progress = RichProgress(bars)
        path = run.save(output, force=force, resume=resume)
    manifest, sheet = sidecar_paths(path)
    stats = run.engine.stats
    err.print(
        f"wrote {path} ({run.length} frames, {stats.cfg_evaluations} CFG evaluations, {stats.seconds:.1f} s); "
        f"manifest {manifest.name}, contact sheet {sheet.name}",
        highlight=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------- commands
@app.command(epilog="Example: vidzero generate 'a red circle moving right' -o circle.mp4 --frames 32")
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    output: Output,
    frames: Annotated[int | None, typer.Option(help="Length (default: the model's window).")] = None,
    steps: Steps = 10,
    resample: Annotated[int, typer.Option(help="Resampling iterations U per step (only matters past the first window).")] = 0,
    guidance: Guidance = 9.0,
    seed: Seed = 0,
    eta: Eta = 0.0,
    new_per_window: PerWindow = 1,
    queue: Queue = "pixel",
    negative_prompt: Negative = "",
    fps: Fps = 8.0,
    model: Model = "shapes",
    device: Device = "auto",
    dtype: Dtype = "fp32",
    window: Window = None,
    height: Height = None,
    width: Width = None,
    deflicker: Deflick = False,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Plain text-to-video (no known frames): the reference the other tasks are measured against."""
    from vidzero.tasks.generate import generate as task

    run_cli(lambda: save_run(
        task, output, force, quiet, resume, prompt=prompt, frames=frames, steps=steps, resample=resample, guidance=guidance,
        seed=seed, eta=eta, new_per_window=new_per_window, queue=queue, negative_prompt=negative_prompt, fps=fps, model=model,
        device=device, dtype=dtype, deflicker=deflicker, window=window, height=height, width=width,
    ))


@app.command(epilog="Examples:\n\n  vidzero extend cat.png 'a cat turning its head' -o cat.mp4\n\n  vidzero extend start.png 'a red circle moving right' -o long.mp4 --frames 128")
def extend(
    image: Annotated[str | None, typer.Argument(help="The first frame (PNG, JPEG, ...); centre-cropped and resized to the model's size.")] = None,
    prompt: Annotated[str | None, typer.Argument(help="What happens next.")] = None,
    output: Output = None,
    from_state: Annotated[Path | None, typer.Option("--from", help="Continue a finished run from its OUT.state.pt (then only PROMPT is given, optionally).")] = None,
    frames: Annotated[int | None, typer.Option(help="Total length including the image (default: the model's window, 1 + 15 on ModelScope). 128+ for long video.")] = None,
    steps: Steps = 10,
    resample: Annotated[int, typer.Option(help="Resampling iterations U per DDIM step.")] = 4,
    guidance: Guidance = 9.0,
    seed: Annotated[int | None, typer.Option(help="Run seed (default 0; with --from, the finished run's).")] = None,
    eta: Eta = 0.0,
    init: Init = "inversion",
    new_per_window: PerWindow = 1,
    queue: Annotated[str | None, typer.Option(help="'pixel' (release, default) or 'latent' queue; with --from, the finished run's.")] = None,
    negative_prompt: Negative = "",
    fps: Annotated[float | None, typer.Option(help="Output frame rate (default 8; with --from, the finished run's).")] = None,
    model: Model = "shapes",
    device: Device = "auto",
    dtype: Dtype = "fp32",
    window: Window = None,
    height: Height = None,
    width: Width = None,
    prompt_at: PromptAt = None,
    deflicker: Deflick = False,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Image-to-video, and long video by repeat-and-slide (frames stream to the output as they are made)."""
    from vidzero.tasks.extend import extend as task
    from vidzero.tasks.extend import extend_from

    def body() -> None:
        if output is None:
            raise BadInput("give --output / -o")
        common = dict(steps=steps, resample=resample, guidance=guidance, eta=eta, init=init, new_per_window=new_per_window, negative_prompt=negative_prompt,
                      model=model, device=device, dtype=dtype, deflicker=deflicker, window=window, height=height, width=width)
        given = {k: v for k, v in dict(seed=seed, queue=queue, fps=fps).items() if v is not None}
        if from_state is not None:  # seed, queue and fps default to the finished run's
            if image is not None and prompt is not None:
                raise BadInput("with --from give at most a PROMPT (the frames come from the state)")
            save_run(extend_from, output, force, quiet, resume, state=from_state, prompt=prompt or image, frames=frames,
                     **common, **given)
            return
        if image is None or prompt is None:
            raise BadInput("give IMAGE and PROMPT (or --from STATE)")
        save_run(task, output, force, quiet, resume, image=Path(image), prompt=with_schedule(prompt, prompt_at),
                 frames=frames, **common, **given)

    run_cli(body)


@app.command(epilog="Example: vidzero predict clip.mp4 'the ball keeps rolling' -o more.mp4 --frames 32")
def predict(
    clip: Annotated[Path, typer.Argument(help="The real clip to continue (video file or folder of frames).")],
    prompt: Annotated[str, typer.Argument(help="What happens next.")],
    output: Output,
    frames: Annotated[int, typer.Option(help="Number of new frames.")] = 15,
    from_frame: Annotated[int, typer.Option(help="First frame of the part of the clip to continue from.")] = 0,
    to_frame: Annotated[int | None, typer.Option(help="End (exclusive) of that part (default: the clip's end).")] = None,
    new_only: Annotated[bool, typer.Option("--new-only", help="Write only the new frames, not the context.")] = False,
    steps: Steps = 10,
    resample: Annotated[int, typer.Option(help="Resampling iterations U per DDIM step.")] = 4,
    guidance: Guidance = 9.0,
    seed: Seed = 0,
    eta: Eta = 0.0,
    init: Init = "inversion",
    new_per_window: PerWindow = 1,
    queue: Queue = "pixel",
    negative_prompt: Negative = "",
    fps: Annotated[float | None, typer.Option(help="Output frame rate (default: the clip's).")] = None,
    model: Model = "shapes",
    device: Device = "auto",
    dtype: Dtype = "fp32",
    window: Window = None,
    height: Height = None,
    width: Width = None,
    deflicker: Deflick = False,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Continue a real clip: its last window-1 frames are the known prefix, then repeat-and-slide."""
    from vidzero.tasks.predict import predict as task

    extra = {"fps": fps} if fps is not None else {}
    run_cli(lambda: save_run(
        task, output, force, quiet, resume, clip=clip, prompt=prompt, frames=frames, from_frame=from_frame, to_frame=to_frame,
        new_only=new_only, steps=steps, resample=resample, guidance=guidance, seed=seed, eta=eta, init=init, new_per_window=new_per_window, queue=queue,
        negative_prompt=negative_prompt, model=model, device=device, dtype=dtype, deflicker=deflicker, window=window,
        height=height, width=width, **extra,
    ))


def with_schedule(prompt: str, prompt_at: list[str] | None) -> str | dict[int, str]:
    if not prompt_at:
        return prompt
    table = {0: prompt}
    for item in prompt_at:
        frame, text = parse_position(item, "=", "--prompt-at", "TEXT")
        table[frame] = text
    return table


def parse_position(text: str, sep: str, what: str, value_name: str = "PATH") -> tuple[int, str]:
    pos, found, value = text.partition(sep)
    if not found or not pos.strip().lstrip("-").isdigit() or not value:
        raise BadInput(f"{what} {text!r} should look like N{sep}{value_name}")
    return int(pos), value


@app.command(
    epilog="Examples:\n\n  vidzero infill start.png end.png 'a red circle moving right' -o mid.mp4 --frames 16\n\n"
    "  vidzero infill 'a red circle moving right' -o t.mp4 --frames 41 --key 0=a.png --key 20=b.png --key 40=c.png"
)
def infill(
    args: Annotated[list[str], typer.Argument(help="[START END] PROMPT: two images for the ends, or only the prompt with --key/--clip.")],
    output: Output,
    frames: Annotated[int, typer.Option(help="Total length of the timeline.")] = 16,
    key: Annotated[list[str] | None, typer.Option("--key", help="N=IMAGE: a known frame at position N. Repeatable.")] = None,
    clip: Annotated[list[str] | None, typer.Option("--clip", help="N:VIDEO: a real clip placed from position N. Repeatable.")] = None,
    order: Annotated[str, typer.Option(help="Fill gaps 'inward' (from both ends) or 'forward' (left to right).")] = "inward",
    steps: Steps = 10,
    resample: Annotated[int, typer.Option(help="Resampling iterations U per DDIM step.")] = 4,
    guidance: Guidance = 9.0,
    seed: Seed = 0,
    eta: Eta = 0.0,
    init: Init = "inversion",
    new_per_window: PerWindow = 1,
    queue: Queue = "pixel",
    negative_prompt: Negative = "",
    fps: Fps = 8.0,
    model: Model = "shapes",
    device: Device = "auto",
    dtype: Dtype = "fp32",
    window: Window = None,
    height: Height = None,
    width: Width = None,
    prompt_at: PromptAt = None,
    deflicker: Deflick = False,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Fill the frames between known frames (two ends, keyframes, placed clips) zero-shot."""

    def body() -> None:
        from vidzero.tasks.infill import Keyframes
        from vidzero.tasks.infill import infill as task

        if len(args) not in (1, 3):
            raise BadInput("give START END PROMPT, or PROMPT with --key/--clip")
        *ends, prompt = args
        keys = dict(parse_position(k, "=", "--key") for k in key or [])
        if ends:
            for position, image in ((0, ends[0]), (frames - 1, ends[1])):
                if position in keys:
                    raise BadInput(f"two keys at frame {position}")
                keys[position] = image
        clips = dict(parse_position(c, ":", "--clip") for c in clip or [])
        if len(keys) != len(key or []) + len(ends) or len(clips) != len(clip or []):
            raise BadInput("two keys or clips at the same position")
        if not keys and not clips:
            raise BadInput("no known frames: give START END images, --key or --clip")
        save_run(
            task, output, force, quiet, resume, timeline=Keyframes(frames, keys, clips), prompt=with_schedule(prompt, prompt_at), order=order, steps=steps,
            resample=resample, guidance=guidance, seed=seed, eta=eta, init=init, new_per_window=new_per_window, queue=queue, negative_prompt=negative_prompt,
            fps=fps, model=model, device=device, dtype=dtype, deflicker=deflicker, window=window, height=height, width=width,
        )

    run_cli(body)


@app.command(
    name="deflicker",
    epilog="Examples:\n\n  vidzero deflicker in.mp4 -o out.mp4 --anchor 0\n\n  vidzero deflicker in.mp4 --report-only",
)
def deflicker_command(
    clip: Annotated[Path, typer.Argument(help="Video file or folder of frames.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Deflickered video (.mp4, .webm, .gif or a folder).")] = None,
    anchor: Annotated[list[int] | None, typer.Option("--anchor", help="Index of a known frame: kept unchanged, pulls its neighbours' colours. Repeatable.")] = None,
    window: Annotated[int, typer.Option(help="Frames on each side for the temporal median of colour statistics.")] = 4,
    temporal: Annotated[float, typer.Option(help="Weight of the flow-warped previous frame (0 turns it off).")] = 0.5,
    flow: Annotated[str, typer.Option(help="Optical flow: dis, farneback or none.")] = "dis",
    report_only: Annotated[bool, typer.Option("--report-only", help="Only measure: write CLIP.flicker.json and CLIP.flicker.png.")] = False,
    force: Force = False,
) -> None:
    """Remove brightness/colour flicker and jitter from a clip; write a flicker report (JSON + plot)."""

    def body() -> None:
        from vidzero.flicker import DeflickerSettings
        from vidzero.tasks.deflicker import deflicker_clip, report_clip

        if report_only:
            r = report_clip(clip, force=force)
            err.print(f"flicker index {r['flicker_index']:.4f}, colour {r['colour_flicker_index']:.4f}, warp error {r['warp_error']:.3f} ({r['frames']} frames)", soft_wrap=True)
            return
        if output is None:
            raise BadInput("give --output (or --report-only)")
        settings = DeflickerSettings(window=window, temporal=temporal, flow=flow)
        with err.status("deflickering"):
            summary = deflicker_clip(clip, output, anchor or [], settings, force=force)
        err.print(
            f"wrote {output}: flicker index {summary['input']['flicker_index']:.4f} -> {summary['output']['flicker_index']:.4f}, "
            f"warp error {summary['input']['warp_error']:.3f} -> {summary['output']['warp_error']:.3f}",
            soft_wrap=True,
        )

    run_cli(body)


@app.command(epilog="Example: vidzero info shapes")
def info(
    model: Annotated[str, typer.Argument(help="'shapes', a diffusers folder, or a hub id in the local cache.")] = "shapes",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a checkpoint's components, sizes and native window."""

    def body() -> None:
        from vidzero.backbone import Backbone

        desc = Backbone.load(model, device="cpu").describe()
        if as_json:
            typer.echo(json.dumps(desc, indent=2))
            return
        from rich.table import Table

        table = Table(title=f"vidzero info {model}", show_header=False)
        for key, value in desc.items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
        Console().print(table)

    run_cli(body)


def main() -> None:
    app(prog_name="vidzero")


if __name__ == "__main__":
    sys.exit(main())
