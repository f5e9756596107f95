"""The studio's server: Gradio imported with its temporary folder in the outputs folder, the page
built over it, served on 127.0.0.1 (a public link only with `--share`), and Gradio's refusals of
a request as one line."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from vidzero.app.studio import STUDIO_FOLDER, Studio
from vidzero.errors import BadInput


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


def serve(studio: Studio, port: int | None = None, share: bool = False, host: str = "127.0.0.1") -> Any:
    """Build and start the page; returns the running Blocks (its `local_url` printed)."""
    from vidzero.app.studio_page import build_page

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
