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

import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from vidzero.app.studio import (
    RunHandle,
    Studio,
    bar,
    frame_span,
    message,
    seam_choices,
    timeline_inputs,
)
from vidzero.app.studio_fields import add_point, number_text, path_preview, prompt_value, whole
from vidzero.app.studio_server import require_gradio, studio_blocks, uploaded_path
from vidzero.errors import BadInput
from vidzero.media.outputs import REPORT_PNG, STATE, sidecar
from vidzero.runs.options import DEFAULT_PRESET, PRESETS, RunOptions
from vidzero.tasks.deflicker import report_paths as flicker_paths
from vidzero.tasks.infill import InfillInputs

POLL_SECONDS = 0.4


def default_of(table: type, name: str) -> Any:
    """A field's default in a table (task inputs or run options), where it is written once."""
    return next(f.default for f in fields(table) if f.name == name)


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
