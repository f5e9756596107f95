"""Command-line parameters made from the tables: a task's input fields (and its CLI-only
parameters), the run options of `RunOptions`, the saving flags; and the values typer hands back
turned into the task's inputs and a `RunOptions`."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from vidzero.runs.options import RunOptions, option_fields
from vidzero.runs.spec import CliParam
from vidzero.tasks import Task

SIMPLE_TYPES = (str, int, float, bool, Path)


def cli_type(hint: Any) -> Any:
    """The type typer parses a field as: simple types as they are, repeatable ones as lists, the
    rest (Python-only objects such as images or schedules) as text."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if hint in SIMPLE_TYPES:
        return hint
    if typing.get_origin(hint) in (list, tuple):
        return hint if typing.get_origin(hint) is list else list[args[0]] | None  # type: ignore[valid-type]
    if optional and len(args) == 1 and args[0] in SIMPLE_TYPES:
        return hint
    return str | None


def plain_help(text: str) -> str:
    """Help text shown as written: rich turns `:name:` into an emoji (`A:B: ...` into `A🅱 ...`), so
    a word joiner (U+2060, invisible) goes after every colon that would open such a code."""
    return re.sub(r":(?=[\w+-]+:)", ":\u2060", text)


def parameter(
    name: str, hint: Any, help: str, kind: str, default: Any, names: tuple[str, ...] = (), metavar: str | None = None
) -> inspect.Parameter:
    help = plain_help(help)
    if kind == "argument":
        info: Any = typer.Argument(help=help, show_default=False, metavar=metavar or name.upper())
        return inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=Annotated[hint, info]
        )
    flags = names or ("--" + name.replace("_", "-"),)
    info = typer.Option(*flags, help=help, metavar=metavar, show_default=default not in (None, False, ()))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[hint, info])


def input_parameters(task: Task) -> list[inspect.Parameter]:
    """The task's input fields that the command line spells directly, and its CLI-only params."""
    hints = typing.get_type_hints(task.inputs)
    params = []
    for f in dataclasses.fields(task.inputs):
        meta = f.metadata
        if meta.get("cli") is None:
            continue
        default: Any = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        if default == ():
            default = None
        params.append(
            parameter(
                f.name, cli_type(hints[f.name]), meta["help"], meta["cli"], default, meta["names"], meta["metavar"]
            )
        )
    extra: tuple[CliParam, ...] = getattr(task.inputs, "cli_params", ())
    for p in extra:
        default = inspect.Parameter.empty if p.kind == "argument" and "None" not in str(p.type) else p.default
        params.append(parameter(p.name, p.type, p.help, p.kind, default, p.names, p.metavar))
    return params


def option_parameters() -> list[inspect.Parameter]:
    """One flag per run option the CLI shows; unset flags are None (the table's default)."""
    hints = typing.get_type_hints(RunOptions)
    params = []
    for f in option_fields(cli=True):
        hint = hints[f.name]
        # a switch is off unless given; any other flag is None (unset: the table's default) unless given
        flag_type, default = (
            (bool, False) if hint is bool else (hint if type(None) in typing.get_args(hint) else hint | None, None)
        )
        flag = "--" + f.name.replace("_", "-")
        info = typer.Option(
            *((flag, "-m") if f.name == "model" else (flag,)),
            help=plain_help(
                f"{f.metadata['help']} [default: {f.default}]" if f.default not in (None, False) else f.metadata["help"]
            ),
            metavar=f.metadata.get("metavar"),
            show_default=False,
            rich_help_panel="Run options",
        )
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[flag_type, info]
            )
        )
    return params


OUTPUT = parameter(
    "output",
    Path | None,
    "Output: .mp4, .webm, .gif, or a folder name for PNG frames.",
    "option",
    None,
    ("--output", "-o"),
)
FORCE = parameter(
    "force",
    bool,
    "Replace a previous vidzero output of the same name (never a file vidzero did not write).",
    "option",
    False,
)
SAVING = [
    OUTPUT,
    FORCE,
    parameter(
        "resume", bool, "Continue an interrupted run from OUTPUT's saved state (same parameters).", "option", False
    ),
    parameter("quiet", bool, "No progress display.", "option", False, ("--quiet", "-q")),
    parameter(
        "dry_run",
        bool,
        "Print the plan, its cost and an estimated time and memory, then exit without writing.",
        "option",
        False,
    ),
]
DEFLICKER_ONLY = [
    OUTPUT,
    parameter("report_only", bool, "Only measure: write CLIP.flicker.json and CLIP.flicker.png.", "option", False),
    FORCE,
]


def register(
    app: typer.Typer,
    name: str,
    params: list[inspect.Parameter],
    help_text: str,
    epilog: str,
    body: Callable[[dict[str, Any]], None],
) -> None:
    """Add command `name` to `app`: typer reads `params`, `body` receives their values as a dict."""

    def command(**values: Any) -> None:
        body(values)

    def order(p: inspect.Parameter) -> tuple[int, bool]:
        """Positional arguments first (required ones before optional ones), then the options."""
        return (p.kind, p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not inspect.Parameter.empty)

    ordered = sorted(params, key=order)
    command.__signature__ = inspect.Signature(ordered)  # type: ignore[attr-defined]
    command.__name__ = name
    command.__doc__ = help_text
    app.command(name=name, epilog=epilog)(command)


def examples(task: Task) -> str:
    return "Examples:\n\n" + "\n\n".join(f"  {e}" for e in task.examples)


# ---------------------------------------------------------------- values
def inputs_from(task: Task, values: dict[str, Any]) -> Any:
    make = getattr(task.inputs, "from_cli", None)
    if make is not None:
        return make(values)
    return task.inputs(**{f.name: values[f.name] for f in dataclasses.fields(task.inputs)})


def unset(value: Any) -> bool:
    """A flag not given: None, or a switch left off (not 0, which is a value)."""
    return value is None or value is False


def options_from(values: dict[str, Any]) -> tuple[RunOptions, set[str]]:
    given = {f.name: values[f.name] for f in option_fields(cli=True) if not unset(values.get(f.name))}
    given["progress"] = not values.get("quiet", False)
    return RunOptions.given(given), set(given) - {"progress"}
