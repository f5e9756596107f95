"""Errors the user can fix, and the way a callback stops a run.

A `BadInput` names the option it is about in a template, so that the Python API and the CLI
give the same message in their own terms: `steps must be ...` in Python, `--steps must be ...`
on the command line. The CLI prints it as one line and exits with status 2.
"""

from __future__ import annotations

import re

# Python argument name -> how the CLI spells it, where that is not `--` + the name with dashes.
CLI_NAMES = {
    "image": "IMAGE",
    "prompt": "PROMPT",
    "clip": "CLIP",
    "jobs": "JOBS",
    "video": "VIDEO",
    "output": "--output",
    "state": "--from",
    "keys": "--key",
    "clips": "--clip",
    "prompt_schedule": "--prompt-at",
    "anchors": "--anchor",
}


def cli_name(option: str) -> str:
    return CLI_NAMES.get(option, "--" + option.replace("_", "-"))


def switch_name(option: str, cli: bool) -> str:
    """A switch as a reader of each face would turn it on: `force=True` or `--force`."""
    return cli_name(option) if cli else f"{option}=True"


def shown(value: object, limit: int = 80) -> str:
    """A value as a message quotes it: its repr, cut to `limit` characters, so that a 10,000
    character name still makes a readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# `{+force}` in a message: the switch `force` in the reader's spelling
SWITCH = re.compile(r"\{\+([a-z_]+)\}")


class BadInput(ValueError):
    """Input the user can correct: a missing file, an impossible layout, an absurd setting, an
    environment that cannot hold the output. `{option}` in the message stands for the option's
    name and `{+name}` for a switch to turn on (`force=True`, `--force`), written the Python way
    by `str()` and the CLI way by `for_cli()`: the library speaks in parameters, the CLI
    translates."""

    def __init__(self, message: str, option: str | None = None) -> None:
        self.template = message
        self.option = option
        super().__init__(self._render(option or "", cli=False))

    def _render(self, name: str, cli: bool) -> str:
        text = self.template.replace("{option}", name) if self.option else self.template
        return SWITCH.sub(lambda m: switch_name(m.group(1), cli), text)

    def for_cli(self) -> str:
        return self._render(cli_name(self.option) if self.option else "", cli=True)


class NoRoom(BadInput):
    """The machine cannot hold what is being written (a full disk, a quota, a read-only file
    system): every later write would fail the same way, so a batch stops at the first."""


class StopRun(Exception):
    """Raised inside a run when a step callback asks it to stop (the callback returned False)."""
