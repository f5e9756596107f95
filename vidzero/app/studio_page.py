"""The studio's page: Gradio components wired to the actions of vidzero.app.studio.

Gradio is an optional extra (`pip install -e ".[studio]"`) imported only here and only when the
page is built. The page keeps Gradio's upload cache inside the outputs folder
(`OUTPUTS/.studio/`) and serves nothing else, binds 127.0.0.1 unless told otherwise, and never
shares to a public link unless `--share` is given.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidzero.app.studio import (
    STUDIO_FOLDER,
    RunHandle,
    Studio,
    bar,
    frame_span,
    message,
    seam_choices,
    timeline_inputs,
)
from vidzero.errors import BadInput
from vidzero.media.outputs import REPORT_PNG, STATE, sidecar
from vidzero.runs.options import DEFAULT_PRESET, PRESETS
from vidzero.tasks.deflicker import report_paths as flicker_paths

POLL_SECONDS = 0.4
SCHEDULE_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def prompt_value(text: str) -> Any:
    """A prompt field: plain text, or lines `FRAME: text` (a prompt per stretch)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    matched = [SCHEDULE_LINE.match(line) for line in lines]
    if lines and all(matched):
        return {m.group(1): m.group(2) for m in matched if m}
    return (text or "").strip() or None


def whole(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def number_text(text: str | None) -> Any:
    """A number typed in a text field: empty is the default, digits a number, anything else is
    passed on for the option table to refuse with its own message."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else text or None


def free_port(port: int | None = None, host: str = "127.0.0.1") -> int:
    """`port` if it is a port nothing listens on (None: any free one), or a one-line error."""
    if port is not None and not 1 <= port <= 65535:
        raise BadInput(f"{{option}} must be a port number from 1 to 65535, not {port}", "port")
    port = port or 0
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            raise BadInput(
                f"{{option}} {port} is in use on {host}: choose another, or leave it out for a free one", "port"
            ) from None
        return int(s.getsockname()[1])


def require_gradio(outputs: str | Path) -> Any:
    """Gradio, imported after its temporary folder is pointed into the outputs folder: Gradio
    reads GRADIO_TEMP_DIR once, when it is first imported, for uploads and its own files. A
    one-line error when the studio extra is missing."""
    os.environ["GRADIO_TEMP_DIR"] = str(Path(outputs).resolve() / STUDIO_FOLDER)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise BadInput('vidzero studio needs Gradio: pip install "vidzero[studio]"') from None
    return gr


def refusal_line(exc: BaseException) -> str:
    """One line for a request Gradio refused before a handler ran (a value outside a dropdown's
    choices, a file field naming a path never uploaded): the library's reason, first line only."""
    cause = exc.__cause__ if exc.__cause__ is not None and not isinstance(exc, BadInput) else exc
    text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def studio_blocks(gr: Any) -> type:
    """Blocks whose refusals of a request (Gradio's own checks of what a request carries: a value
    outside a dropdown's choices, a file field that is no file) are one line on the page and one
    in the console, never a traceback: the server keeps serving."""

    class StudioBlocks(gr.Blocks):
        async def preprocess_data(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().preprocess_data(*args, **kwargs)
            except Exception as exc:
                line = refusal_line(exc)
                print(f"vidzero studio: refused a request: {line}", file=sys.stderr, flush=True)
                raise gr.Error(line, print_exception=False) from None

    return StudioBlocks


def uploaded_path(payload: Any) -> str | None:
    """An image field's upload handed to the handler as its path, undecoded, so that the CLI's
    reader judges it and its one-line error shows beside the fields (Gradio's own field decodes
    the upload first, and a file that is no image became a traceback). Set on the field itself:
    subclassing a Gradio component makes Gradio write a stub file beside the subclass's module."""
    return None if payload is None else str(payload.path)


def build_page(studio: Studio) -> Any:
    """The page's Blocks (not launched)."""
    gr = require_gradio(studio.outputs)
    blocks = studio_blocks(gr)
    keep = gr.update()

    def watch(handle: RunHandle) -> Iterator[tuple]:
        """Yield (error, status, frames, video, contact, report, seams) until the run ends."""
        shown = False  # frames of this run on the page (its frames folder goes when it finishes)
        while True:
            snap = handle.snapshot()
            status = f"**{snap['status']}**  \n`{bar(snap['fraction'])}`  \n{handle.estimate}"
            # this run's frames only: the first poll clears the last run's, the last keeps this one's
            frames = snap["frames"] if snap["frames"] or not shown else keep
            shown = shown or bool(snap["frames"])
            yield "", status, frames, keep, keep, keep, keep
            if not snap["running"]:
                break
            time.sleep(POLL_SECONDS)
        if handle.outcome in ("done", "complete already"):
            files = studio.result_files(handle.output)
            seams = "\n".join(f"- reroll frames {choice}" for choice in seam_choices(files["seams"]))
            yield (
                "",
                f"**{handle.outcome}**: {handle.output.name}",
                keep,
                files["video"],
                files["contact"],
                files["report"],
                seams or "no seams flagged",
            )
        elif handle.outcome.startswith("error: "):
            yield handle.outcome.removeprefix("error: "), "**stopped by an error**", keep, keep, keep, keep, keep
        else:
            yield "", f"**{handle.outcome}**: Resume continues it", keep, keep, keep, keep, keep

    def result_column(first: bool) -> list[Any]:
        """A run's results as each tab shows them: status, frames as they are made, video,
        contact sheet, quality report, seams (the first tab's carry the ids the browser test finds)."""
        ids = (lambda name: name) if first else (lambda name: None)
        with gr.Column():
            return [
                gr.Markdown(elem_id=ids("status")),
                gr.Gallery(label="Frames as they are made", columns=8, height=180, elem_id=ids("gallery")),
                gr.Video(label="Video", height=280, elem_id=ids("video")),
                gr.Image(label="Contact sheet", height=170, elem_id=ids("contact")),
                gr.Image(label="Quality report", height=300, elem_id=ids("report")),
                gr.Markdown(elem_id=ids("seams")),
            ]

    def launch(task: str, inputs: dict, options: dict, name: str, resume: bool) -> Iterator[tuple]:
        try:
            handle = studio.start(task, inputs, options, name, resume=resume)
        except Exception as exc:  # bad input: one line beside the fields, nothing written
            yield message(exc), keep, keep, keep, keep, keep, keep
            return
        yield from watch(handle)

    with blocks(title="vidzero studio") as page:
        gr.Markdown(
            f"# vidzero studio\nEvery run is written to `{studio.outputs}` with its manifest and sidecars, "
            "as the CLI writes it."
        )
        with gr.Accordion(f"Model: {studio.model}", open=False):
            with gr.Row():
                model = gr.Textbox(value=studio.model, label="'shapes', a diffusers folder or a cached hub id")
                use_model = gr.Button("Use this model")
            model_info = gr.Markdown(elem_id="model-info")

        def choose(name: str) -> str:
            try:
                summary = studio.choose_model(name)
            except Exception as exc:
                return message(exc)
            keys = ("family", "window_frames", "height", "width", "unet_parameters", "folder")
            return "\n".join(f"- {k}: {summary.get(k)}" for k in keys)

        use_model.click(choose, model, model_info)
        with gr.Tab("Image to video"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(type="filepath", label="Image", elem_id="image", sources=["upload"])
                    image.preprocess = uploaded_path
                    prompt = gr.Textbox(label="Prompt (or lines FRAME: text)", elem_id="prompt", lines=2)
                    with gr.Row():
                        frames = gr.Number(value=16, precision=0, label="Frames", elem_id="frames")
                        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                        steps = gr.Textbox(label="Steps", placeholder="the preset's", elem_id="steps")
                    preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset", elem_id="preset")
                    name = gr.Textbox(value=studio.next_name(), label="Name", elem_id="name")
                    with gr.Row():
                        run_button = gr.Button("Run", variant="primary", elem_id="run")
                        stop_button = gr.Button("Stop", elem_id="stop")
                        resume_button = gr.Button("Resume", elem_id="resume")
                    error = gr.Markdown(elem_id="error")
                results = [error, *result_column(first=True)]

        def extend(image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, name: str, resume: bool):
            inputs = {"image": image, "prompt": prompt_value(prompt), "frames": whole(frames)}
            if image is None:
                inputs.pop("image")
            options = {"seed": whole(seed), "steps": number_text(steps), "preset": preset}
            yield from launch("extend", inputs, options, name, resume)

        def run_new(image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, name: str):
            yield from extend(image, prompt, frames, seed, steps, preset, name, False)

        def resume(image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, name: str):
            yield from extend(image, prompt, frames, seed, steps, preset, name, True)

        fields = [image, prompt, frames, seed, steps, preset, name]
        run_button.click(run_new, fields, results).then(studio.free_name, name, name)
        resume_button.click(resume, fields, results).then(studio.free_name, name, name)
        stop_button.click(studio.stop, None, None)

        with gr.Tab("Keyframes"):
            with gr.Row():
                with gr.Column():
                    keys = gr.File(file_count="multiple", file_types=["image"], label="Keyframe images")
                    positions = gr.Textbox(label="Their frames, in order (e.g. 0, 15)", elem_id="positions")
                    clips = gr.File(file_count="multiple", file_types=["video"], label="Clips (optional)")
                    clip_positions = gr.Textbox(label="The frame each clip starts at, in order (e.g. 30)")
                    key_prompt = gr.Textbox(label="Prompt (or lines FRAME: text, one per stretch)", lines=3)
                    with gr.Row():
                        key_frames = gr.Number(value=16, precision=0, label="Frames")
                        key_seed = gr.Number(value=0, precision=0, label="Seed")
                    key_name = gr.Textbox(value=studio.next_name("keys"), label="Name")
                    key_button = gr.Button("Fill in", variant="primary")
                    key_error = gr.Markdown()
                key_results = [key_error, *result_column(first=False)]

        def infill(
            images: Any, positions: str, clips: Any, clip_positions: str, prompt: str, frames: Any, seed: Any, name: str
        ):
            try:
                inputs = timeline_inputs(
                    [getattr(f, "name", f) for f in images or []],
                    positions,
                    [getattr(f, "name", f) for f in clips or []],
                    clip_positions,
                    prompt_value(prompt),
                    whole(frames),
                )
            except BadInput as exc:
                yield message(exc), keep, keep, keep, keep, keep, keep
                return
            yield from launch("infill", inputs, {"seed": whole(seed)}, name, False)

        key_button.click(
            infill,
            [keys, positions, clips, clip_positions, key_prompt, key_frames, key_seed, key_name],
            key_results,
        ).then(studio.free_name, key_name, key_name)

        with gr.Tab("Reroll or continue"):
            with gr.Row():
                with gr.Column():
                    made = gr.Dropdown(studio.finished_outputs(), label="A finished video", allow_custom_value=False)
                    refresh = gr.Button("Refresh the list")
                    span = gr.Dropdown(
                        [],
                        label="Frames to make again: a flagged seam, or type a span (e.g. 8-11)",
                        allow_custom_value=True,
                        elem_id="span",
                    )
                    more = gr.Number(value=16, precision=0, label="Or: frames to add at the end")
                    edit_seed = gr.Number(value=1, precision=0, label="Seed")
                    edit_name = gr.Textbox(value=studio.next_name("edit"), label="Name of the new video")
                    with gr.Row():
                        reroll_button = gr.Button("Reroll the frames", variant="primary")
                        continue_button = gr.Button("Continue the video")
                    edit_error = gr.Markdown()
                edit_results = [edit_error, *result_column(first=False)]
        refresh.click(lambda: gr.update(choices=studio.finished_outputs()), None, made)

        def seams_of(chosen: str) -> Any:
            if not chosen:
                return gr.update(choices=[])
            files = studio.result_files(studio.output_path(chosen))
            return gr.update(choices=seam_choices(files["seams"]), value=None)

        made.change(seams_of, made, span)

        def reroll(chosen: str, span: str, seed: Any, name: str):
            try:
                if not chosen:
                    raise BadInput("choose a finished video")
                inputs = {"run": str(studio.output_path(chosen)), "frames": frame_span(span)}
            except BadInput as exc:
                yield message(exc), keep, keep, keep, keep, keep, keep
                return
            yield from launch("reroll", inputs, {"seed": whole(seed)}, name, False)

        def extend_from(chosen: str, frames: Any, name: str):
            if not chosen:
                yield "choose a finished video", keep, keep, keep, keep, keep, keep
                return
            state = str(sidecar(studio.output_path(chosen), STATE))
            yield from launch("extend", {"from_state": state, "frames": whole(frames)}, {}, name, False)

        reroll_button.click(reroll, [made, span, edit_seed, edit_name], edit_results).then(
            studio.free_name, edit_name, edit_name
        )
        continue_button.click(extend_from, [made, more, edit_name], edit_results).then(
            studio.free_name, edit_name, edit_name
        )

        with gr.Tab("Deflicker or report a clip"):
            with gr.Row():
                with gr.Column():
                    clip = gr.Video(label="Clip", sources=["upload"])
                    clip_name = gr.Textbox(value=studio.next_name("deflickered"), label="Name of the deflickered video")
                    with gr.Row():
                        deflicker_button = gr.Button("Deflicker", variant="primary")
                        report_button = gr.Button("Quality report")
                    clip_error = gr.Markdown()
                with gr.Column():
                    clip_status = gr.Markdown()
                    clip_video = gr.Video(label="Result")
                    clip_plot = gr.Image(label="Report")

        def deflicker(clip: Any, name: str):
            try:
                if not clip:
                    raise BadInput("give a clip")
                summary = studio.deflicker(clip, name)
                out = studio.output_path(name)
                before, after = summary["input"]["flicker_index"], summary["output"]["flicker_index"]
                plot = str(flicker_paths(out)[1])
                return "", f"flicker index {before:.3f} -> {after:.3f}", str(out), plot
            except Exception as exc:
                return message(exc), keep, keep, keep

        def quality(clip: Any):
            try:
                if not clip:
                    raise BadInput("give a clip")
                kept = studio.served(clip)  # uploads are kept in the outputs folder
                report = studio.report(kept)
                return "", f"{len(report['seams'])} seam(s) flagged", keep, str(sidecar(kept, REPORT_PNG))
            except Exception as exc:
                return message(exc), keep, keep, keep

        deflicker_button.click(deflicker, [clip, clip_name], [clip_error, clip_status, clip_video, clip_plot]).then(
            studio.free_name, clip_name, clip_name
        )
        report_button.click(quality, [clip], [clip_error, clip_status, clip_video, clip_plot])
    return page


def serve(studio: Studio, port: int | None = None, share: bool = False, host: str = "127.0.0.1") -> Any:
    """Build and start the page; returns the running Blocks (its `local_url` printed)."""
    page = build_page(studio)
    page.queue()
    page.launch(
        server_name=host,
        server_port=free_port(port, host),
        share=share,
        allowed_paths=[str(studio.outputs)],
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
    )
    return page


def served_url(page: Any) -> str:
    return str(getattr(page, "local_url", "") or "")
