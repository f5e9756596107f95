"""The studio's page: Gradio components wired to the actions of vidzero.app.studio.

Gradio is an optional extra (`pip install -e ".[studio]"`) imported only here and only when the
page is built. The page keeps Gradio's upload cache inside the outputs folder
(`OUTPUTS/.studio/`) and serves nothing else, binds 127.0.0.1 unless told otherwise, and never
shares to a public link unless `--share` is given.

The page is a header, the model panel and one builder per tab; each tab's fields take their
defaults from the task and option tables (an empty field is the table's default), and a run's
results are shown by one `Results` column per tab.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

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
from vidzero.runs.options import DEFAULT_PRESET, PRESETS, RunOptions
from vidzero.tasks.deflicker import report_paths as flicker_paths
from vidzero.tasks.infill import InfillInputs

POLL_SECONDS = 0.4
SCHEDULE_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def default_of(table: type, name: str) -> Any:
    """A field's default in a table (task inputs or run options), where it is written once."""
    return next(f.default for f in fields(table) if f.name == name)


def prompt_value(text: str) -> Any:
    """A prompt field: plain text, or lines `FRAME: text` (a prompt per stretch)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    matched = [SCHEDULE_LINE.match(line) for line in lines]
    if lines and all(matched):
        return {m.group(1): m.group(2) for m in matched if m}
    return (text or "").strip() or None


def whole(value: Any) -> int | None:
    """A number field: empty is the default (None), anything else a whole number."""
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


# ---------------------------------------------------------------------- a path drawn on the image
def add_point(path: str, x: float, y: float) -> str:
    """The path's text with a point clicked at (x, y) added (frames stay editable in the text)."""
    return f"{(path or '').strip()} {round(x)},{round(y)}".strip()


def path_preview(image: str | None, path: str) -> np.ndarray | None:
    """The image with the path drawn over it: a line through the points, a dot at each (the first
    ringed: the object under it moves), each pinned frame written beside its point."""
    import cv2

    from vidzero.core.paths import parse_path
    from vidzero.media.images import open_image

    if not image:
        return None
    picture = open_image(image).copy()
    try:
        points = parse_path(path) if (path or "").strip() else []
    except BadInput:
        return picture
    scale = max(1, round(max(picture.shape[:2]) / 256))
    xy = [(round(x), round(y)) for x, y, _ in points]
    for a, b in zip(xy, xy[1:]):
        cv2.line(picture, a, b, (255, 255, 255), scale, cv2.LINE_AA)
    for i, ((x, y), (_, _, frame)) in enumerate(zip(xy, points)):
        cv2.circle(picture, (x, y), 2 * scale, (255, 220, 0), -1, cv2.LINE_AA)
        if i == 0:
            cv2.circle(picture, (x, y), 4 * scale, (255, 255, 255), scale, cv2.LINE_AA)
        if frame is not None:
            cv2.putText(
                picture,
                str(frame),
                (x + 3 * scale, y - 3 * scale),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.3 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return picture


# ---------------------------------------------------------------------- results
@dataclass
class Results:
    """A run's results as a tab shows them: error, status, frames as they are made, video,
    contact sheet, quality report, seams (the first tab's carry the ids the browser test finds)."""

    error: Any
    status: Any
    gallery: Any
    video: Any
    contact: Any
    report: Any
    seams: Any

    @classmethod
    def column(cls, gr: Any, error: Any, first: bool) -> Results:
        ids = (lambda name: name) if first else (lambda name: None)
        with gr.Column():
            return cls(
                error,
                gr.Markdown(elem_id=ids("status")),
                gr.Gallery(label="Frames as they are made", columns=8, height=180, elem_id=ids("gallery")),
                gr.Video(label="Video", height=280, elem_id=ids("video")),
                gr.Image(label="Contact sheet", height=170, elem_id=ids("contact")),
                gr.Image(label="Quality report", height=300, elem_id=ids("report")),
                gr.Markdown(elem_id=ids("seams")),
            )

    @property
    def all(self) -> list[Any]:
        return [self.error, self.status, self.gallery, self.video, self.contact, self.report, self.seams]

    def refused(self, exc: BaseException) -> dict[Any, Any]:
        return {self.error: message(exc)}

    def watch(self, studio: Studio, handle: RunHandle) -> Iterator[dict[Any, Any]]:
        """The run's progress, then its results, until it ends."""
        shown = False  # frames of this run on the page (its frames folder goes when it finishes)
        while True:
            snap = handle.snapshot()
            update = {
                self.error: "",
                self.status: f"**{snap['status']}**  \n`{bar(snap['fraction'])}`  \n{handle.estimate}",
            }
            if snap["frames"] or not shown:  # this run's frames only: the first poll clears the last run's
                update[self.gallery] = snap["frames"]
            shown = shown or bool(snap["frames"])
            yield update
            if not snap["running"]:
                break
            time.sleep(POLL_SECONDS)
        if handle.outcome in ("done", "complete already"):
            files = studio.result_files(handle.output)
            seams = "\n".join(f"- reroll frames {choice}" for choice in seam_choices(files["seams"]))
            yield {
                self.status: f"**{handle.outcome}**: {handle.output.name}",
                self.video: files["video"],
                self.contact: files["contact"],
                self.report: files["report"],
                self.seams: seams or "no seams flagged",
            }
        elif handle.outcome.startswith("error: "):
            yield {self.error: handle.outcome.removeprefix("error: "), self.status: "**stopped by an error**"}
        else:
            yield {self.status: f"**{handle.outcome}**: Resume continues it"}

    def launch(
        self, studio: Studio, task: str, inputs: dict, options: dict, name: str, resume: bool = False
    ) -> Iterator[dict[Any, Any]]:
        try:
            handle = studio.start(task, inputs, options, name, resume=resume)
        except Exception as exc:  # bad input: one line beside the fields, nothing written
            yield self.refused(exc)
            return
        yield from self.watch(studio, handle)


# ---------------------------------------------------------------------- the page
def build_page(studio: Studio) -> Any:
    """The page's Blocks (not launched)."""
    gr = require_gradio(studio.outputs)
    with studio_blocks(gr)(title="vidzero studio") as page:
        gr.Markdown(
            f"# vidzero studio\nEvery run is written to `{studio.label}` with its manifest and sidecars, "
            "as the CLI writes it."
        )
        model_panel(gr, studio)
        image_tab(gr, studio)
        keyframes_tab(gr, studio)
        edit_tab(gr, studio)
        clip_tab(gr, studio)
    return page


def model_panel(gr: Any, studio: Studio) -> None:
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


def seed_field(gr: Any, elem_id: str | None = None) -> Any:
    return gr.Number(value=default_of(RunOptions, "seed"), precision=0, label="Seed", elem_id=elem_id)


def image_tab(gr: Any, studio: Studio) -> None:
    """Image to video, with a motion path drawn by clicking on the image."""
    with gr.Tab("Image to video"), gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="Image (click to draw a path)", elem_id="image", sources=["upload"])
            image.preprocess = uploaded_path
            prompt = gr.Textbox(label="Prompt (or lines FRAME: text)", elem_id="prompt", lines=2)
            with gr.Row():
                frames = gr.Number(
                    value=None, precision=0, label="Frames (empty: the model's window)", elem_id="frames"
                )
                seed = seed_field(gr, "seed")
                steps = gr.Textbox(label="Steps", placeholder="the preset's", elem_id="steps")
            preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset", elem_id="preset")
            with gr.Row():
                path = gr.Textbox(
                    label="Motion path: X,Y points (click the image), X,Y@F pins frame F",
                    placeholder="no path: the motion the prompt says",
                    elem_id="path",
                )
                clear = gr.Button("Clear the path", elem_id="clear-path", scale=0)
            preview = gr.Image(label="The path over the image", interactive=False, height=200, elem_id="path-preview")
            name = gr.Textbox(value=studio.next_name(), label="Name", elem_id="name")
            with gr.Row():
                run_button = gr.Button("Run", variant="primary", elem_id="run")
                stop_button = gr.Button("Stop", elem_id="stop")
                resume_button = gr.Button("Resume", elem_id="resume")
            error = gr.Markdown(elem_id="error")
        results = Results.column(gr, error, first=True)

    def clicked(path_text: str, event: Any) -> str:
        x, y = event.index  # the click, in the image's own pixels
        return add_point(path_text, float(x), float(y))

    clicked.__annotations__["event"] = gr.SelectData  # Gradio hands the click to a parameter typed so

    image.select(clicked, path, path)
    clear.click(lambda: "", None, path)
    for changed in (image.change, path.change):
        changed(path_preview, [image, path], preview)

    def extend(
        image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, path: str, name: str, resume: bool
    ):
        inputs = {"image": image, "prompt": prompt_value(prompt), "frames": whole(frames)}
        if image is None:
            inputs.pop("image")
        if (path or "").strip():
            inputs["path"] = path.strip()
        options = {"seed": whole(seed), "steps": number_text(steps), "preset": preset}
        yield from results.launch(studio, "extend", inputs, options, name, resume)

    def run_new(image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, path: str, name: str):
        yield from extend(image, prompt, frames, seed, steps, preset, path, name, False)

    def resume(image: Any, prompt: str, frames: Any, seed: Any, steps: Any, preset: str, path: str, name: str):
        yield from extend(image, prompt, frames, seed, steps, preset, path, name, True)

    given = [image, prompt, frames, seed, steps, preset, path, name]
    run_button.click(run_new, given, results.all).then(studio.free_name, name, name)
    resume_button.click(resume, given, results.all).then(studio.free_name, name, name)
    stop_button.click(studio.stop, None, None)


def keyframes_tab(gr: Any, studio: Studio) -> None:
    """Images and clips at frame positions on a timeline (infill)."""
    with gr.Tab("Keyframes"), gr.Row():
        with gr.Column():
            keys = gr.File(file_count="multiple", file_types=["image"], label="Keyframe images")
            positions = gr.Textbox(label="Their frames, in order (e.g. 0, 15)", elem_id="positions")
            clips = gr.File(file_count="multiple", file_types=["video"], label="Clips (optional)")
            clip_positions = gr.Textbox(label="The frame each clip starts at, in order (e.g. 30)")
            prompt = gr.Textbox(label="Prompt (or lines FRAME: text, one per stretch)", lines=3)
            with gr.Row():
                frames = gr.Number(value=default_of(InfillInputs, "frames"), precision=0, label="Frames")
                seed = seed_field(gr)
            name = gr.Textbox(value=studio.next_name("keys"), label="Name")
            button = gr.Button("Fill in", variant="primary")
            error = gr.Markdown()
        results = Results.column(gr, error, first=False)

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
            yield results.refused(exc)
            return
        yield from results.launch(studio, "infill", inputs, {"seed": whole(seed)}, name)

    given = [keys, positions, clips, clip_positions, prompt, frames, seed, name]
    button.click(infill, given, results.all).then(studio.free_name, name, name)


def edit_tab(gr: Any, studio: Studio) -> None:
    """Reroll a stretch of a finished video, or continue it."""
    with gr.Tab("Reroll or continue"), gr.Row():
        with gr.Column():
            made = gr.Dropdown(studio.finished_outputs(), label="A finished video", allow_custom_value=False)
            refresh = gr.Button("Refresh the list")
            span = gr.Dropdown(
                [],
                label="Frames to make again: a flagged seam, or type a span (e.g. 8-11)",
                allow_custom_value=True,
                elem_id="span",
            )
            more = gr.Number(value=None, precision=0, label="Or: frames to add at the end (empty: a window's)")
            # empty: the reroll's own rule (the original seed + 1), as on the command line
            seed = gr.Number(value=None, precision=0, label="Seed (empty: the original's + 1)", elem_id="reroll-seed")
            name = gr.Textbox(value=studio.next_name("edit"), label="Name of the new video")
            with gr.Row():
                reroll_button = gr.Button("Reroll the frames", variant="primary")
                continue_button = gr.Button("Continue the video")
            error = gr.Markdown()
        results = Results.column(gr, error, first=False)
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
            yield results.refused(exc)
            return
        yield from results.launch(studio, "reroll", inputs, {"seed": whole(seed)}, name)

    def extend_from(chosen: str, frames: Any, name: str):
        if not chosen:
            yield results.refused(BadInput("choose a finished video"))
            return
        state = str(sidecar(studio.output_path(chosen), STATE))
        yield from results.launch(studio, "extend", {"from_state": state, "frames": whole(frames)}, {}, name)

    reroll_button.click(reroll, [made, span, seed, name], results.all).then(studio.free_name, name, name)
    continue_button.click(extend_from, [made, more, name], results.all).then(studio.free_name, name, name)


def clip_tab(gr: Any, studio: Studio) -> None:
    """Deflicker a clip, or write its quality report."""
    with gr.Tab("Deflicker or report a clip"), gr.Row():
        with gr.Column():
            clip = gr.Video(label="Clip", sources=["upload"])
            name = gr.Textbox(value=studio.next_name("deflickered"), label="Name of the deflickered video")
            with gr.Row():
                deflicker_button = gr.Button("Deflicker", variant="primary")
                report_button = gr.Button("Quality report")
            error = gr.Markdown()
        with gr.Column():
            status = gr.Markdown()
            video = gr.Video(label="Result")
            plot = gr.Image(label="Report")

    def deflicker(clip: Any, name: str) -> dict[Any, Any]:
        try:
            if not clip:
                raise BadInput("give a clip")
            summary = studio.deflicker(clip, name)
            out = studio.output_path(name)
            before, after = summary["input"]["flicker_index"], summary["output"]["flicker_index"]
            return {
                error: "",
                status: f"flicker index {before:.3f} -> {after:.3f}",
                video: str(out),
                plot: str(flicker_paths(out)[1]),
            }
        except Exception as exc:
            return {error: message(exc)}

    def quality(clip: Any) -> dict[Any, Any]:
        try:
            if not clip:
                raise BadInput("give a clip")
            kept = studio.served(clip)  # uploads are kept in the outputs folder
            report = studio.report(kept)
            return {error: "", status: f"{len(report['seams'])} seam(s) flagged", plot: str(sidecar(kept, REPORT_PNG))}
        except Exception as exc:
            return {error: message(exc)}

    shown = [error, status, video, plot]
    deflicker_button.click(deflicker, [clip, name], shown).then(studio.free_name, name, name)
    report_button.click(quality, [clip], shown)


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
