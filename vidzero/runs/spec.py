"""A run as one typed value: which task, its inputs, its options.

`RunSpec(task, inputs, options)` is built the same way by the CLI, by a batch job line, by the
studio and by the Python API, checked once (`RunSpec.checked`), and recorded in the run's
manifest and state file (`record`): the fingerprint that `--resume` and the batch compare is
its hash, and `reroll` and `extend --from` take the recorded options back
(`RunOptions.from_record`). Each task's inputs are a frozen dataclass of the task
module (vidzero.tasks); their fields carry help text and how the command line spells them
(`inp`), from which the CLI and the batch job schema are made.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

from vidzero.core.timeline import Layout
from vidzero.errors import BadInput
from vidzero.runs.options import RunOptions

MISSING: Any = dataclasses.MISSING


def inp(
    help: str,
    default: Any = MISSING,
    *,
    cli: str | None = "option",
    names: tuple[str, ...] = (),
    metavar: str | None = None,
) -> Any:
    """A task input field: its help text, its default (none: required), and its place on the
    command line: "argument" (positional), "option" (`--name`, or `names`), or None (set from
    other arguments, see the task's `from_cli`)."""
    meta = {"help": help, "cli": cli, "names": names, "metavar": metavar}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CliParam:
    """A command-line parameter a task's inputs are made from that is not one of their fields
    (`PROMPT` with `--prompt-at` for a prompt schedule, infill's `[START END] PROMPT`)."""

    name: str
    type: Any
    help: str
    kind: str = "option"  # "argument" or "option"
    names: tuple[str, ...] = ()
    metavar: str | None = None
    default: Any = None


PROMPT = CliParam("prompt", str, "What the video shows.", "argument")
PROMPT_AT = CliParam(
    "prompt_at",
    list[str] | None,
    "N=TEXT: from frame N on, use this prompt (a schedule). Repeatable.",
    metavar="N=TEXT",
)


def parse_position(text: str, sep: str, option: str, value_name: str = "PATH") -> tuple[int, str]:
    """`N<sep>VALUE` from the command line, as (N, VALUE)."""
    pos, found, value = text.partition(sep)
    if not found or not re.fullmatch(r"\s*[0-9]+\s*", pos) or not value.strip():
        raise BadInput(f"{{option}} {text!r} should look like N{sep}{value_name} (N a frame number)", option)
    return int(pos), value


def with_schedule(prompt: str, prompt_at: list[str] | None) -> str | dict[int, str]:
    """PROMPT and its --prompt-at entries as one prompt or a schedule."""
    if not prompt_at:
        return prompt
    table = {0: prompt}
    for item in prompt_at:
        frame, text = parse_position(item, "=", "prompt_schedule", "TEXT")
        if frame in table:
            raise BadInput(f"{{option}}: frame {frame} is given twice", "prompt_schedule")
        table[frame] = text
    return table


class TaskInputs(Protocol):
    """A task's inputs: a frozen dataclass with a `task` name, checks that need no model, and a
    JSON-ready record."""

    task: ClassVar[str]

    def check(self) -> None:
        """Refuse bad inputs before any model loads (files, positions, lengths)."""

    def paths(self) -> list[Path]:
        """The user's files among the inputs (an output must never replace one)."""


def input_record(inputs: Any) -> dict[str, Any]:
    """A task's inputs as JSON-ready values (paths as text, integer keys kept as text keys)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return f"<{type(value).__name__}>"  # an in-memory image: recorded by type (its pixels are in the fingerprint)

    return {f.name: plain(getattr(inputs, f.name)) for f in fields(inputs)}


@dataclass(frozen=True)
class RunSpec:
    task: str
    inputs: Any  # the task's inputs dataclass (TaskInputs)
    options: RunOptions

    @classmethod
    def checked(cls, inputs: Any, options: RunOptions) -> RunSpec:
        """Inputs checked (no model needed) and options validated, presets applied."""
        inputs.check()
        return cls(inputs.task, inputs, options.check())

    def record(self) -> dict[str, Any]:
        return {"task": self.task, "inputs": input_record(self.inputs), "options": self.options.record()}

    def with_options(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes))


def read_fields(cls: type, record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The values of a dataclass's fields in a record, refusing names it does not have."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise BadInput(f"{where} takes no {unknown[0]!r}")
    missing = [
        f.name for f in fields(cls) if f.name not in record and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise BadInput(f"{where} needs {missing[0]!r}")
    return dict(record)


@dataclass
class TaskPlan:
    """What a task makes of its inputs on a backbone: the timeline, and how its output is written."""

    layout: Layout
    first_output: int = 0  # frames before this timeline index are not written (predict --new-only)
    job_offset: int = 0  # window seeds continue from here (extend --from)
    details: dict[str, Any] = field(default_factory=dict)  # what the task found, for the manifest
