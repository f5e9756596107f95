"""One table of options and one of tasks: the Python API, the CLI and the batch job schema are
made from them and hold the same names, and no option's default is written anywhere else."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

import vidzero
from vidzero.app import api, cli
from vidzero.app.jobs import JOB_KEYS, SUGAR, job_keys
from vidzero.runs.options import NOT_RECORDED, RunOptions, option_fields
from vidzero.tasks import TASKS

OPTIONS = {f.name for f in dataclasses.fields(RunOptions)}
# each API function and the fields of its task's inputs it takes (extend_from: the same task)
API = {
    "generate": ("generate", {"prompt", "frames"}),
    "extend": ("extend", {"image", "prompt", "frames", "loop", "path", "mask"}),
    "extend_from": ("extend", {"state", "frames", "prompt"}),
    "predict": ("predict", {"clip", "prompt", "frames", "from_frame", "to_frame", "new_only", "path", "mask"}),
    "infill": ("infill", {"prompt", "frames", "keys", "clips", "order", "loop", "path", "mask"}),
    "infill_between": ("infill", {"start", "end", "prompt", "frames", "order", "loop", "path", "mask"}),
    "reroll": ("reroll", {"run", "frames", "prompt"}),
}

# positional arguments that reach the keyword check (nothing is read before it)
API_ARGS = {
    "generate": ("a cat",),
    "extend": ("cat.png", "a cat"),
    "extend_from": ("out.state.safetensors",),
    "predict": ("clip.mp4", "a cat"),
    "infill": ("a cat",),
    "infill_between": ("a.png", "b.png", "a cat"),
    "reroll": ("out.mp4", "1-2"),
}


def test_every_option_has_help_and_a_group():
    for f in dataclasses.fields(RunOptions):
        assert f.metadata["help"].strip() and f.metadata["group"] in ("model", "sampler", "output", "python"), f.name


def test_the_api_declares_every_option_once_with_the_tables_types():
    hints = typing.get_type_hints(api.RunOptionsDict)
    assert set(hints) == OPTIONS | set(api.ALIASES) - {"num_frames"}
    table = typing.get_type_hints(RunOptions)
    for name in OPTIONS - {"progress"}:
        # the keyword takes None (the table's default) and everything the table's field takes
        accepted = set(typing.get_args(hints[name])) or {hints[name]}
        wanted = set(typing.get_args(table[name])) or {table[name]}
        assert type(None) in accepted and wanted - {type(None)} <= accepted | {Path}, name
    assert set(typing.get_type_hints(api.CountedOptionsDict)) - set(hints) == {"num_frames"}


def test_the_model_group_is_load_options_field_by_field_with_its_defaults():
    from vidzero.models.checkpoint import LoadOptions, LoadOptionsDict
    from vidzero.runs.options import LOAD_OPTIONS

    loading = {f.name: f.default for f in dataclasses.fields(LoadOptions)}
    assert set(LOAD_OPTIONS) == set(loading) == set(typing.get_type_hints(LoadOptionsDict)) | {"model"}
    table = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    assert {name: table[name] for name in LOAD_OPTIONS} == loading
    given = RunOptions.given({"window": 8, "device": "cpu", "vae_slice": 2})
    assert given.load_options() == LoadOptions(window=8, device="cpu", vae_slice=2)


@pytest.mark.parametrize("name", sorted(API))
def test_each_api_function_takes_its_task_inputs_and_the_option_keywords(name):
    task, inputs = API[name]
    params = inspect.signature(getattr(vidzero, name)).parameters
    keywords = [p for p in params.values() if p.kind == inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in keywords] == ["options"]
    wanted = "RunOptionsDict" if name == "reroll" else "CountedOptionsDict"
    assert keywords[0].annotation == f"Unpack[{wanted}]"
    assert set(params) - {"options"} == inputs | {"backbone", "generator"}, name
    fields = {f.name for f in dataclasses.fields(TASKS[task].inputs)}
    # the task inputs it takes are its task's fields (extend_from's state is extend's from_state;
    # infill_between's start and end are the job-line names of two keys)
    assert inputs - {"state", "start", "end"} <= fields


@pytest.mark.parametrize("name", sorted(API))
def test_a_misspelt_option_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'stpes'$"):
        getattr(vidzero, name)(*API_ARGS[name], stpes=3)


def test_every_api_function_is_exported_and_the_table_covers_every_generating_task():
    assert {task for task, _ in API.values()} == {name for name, t in TASKS.items() if t.generates}
    for name in API:
        assert getattr(vidzero, name) is getattr(api, name)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_command_takes_its_inputs_and_the_cli_options(name):
    task = TASKS[name]
    command = next(c for c in cli.app.registered_commands if c.name == name)
    params = set(inspect.signature(command.callback).parameters)
    direct = {f.name for f in dataclasses.fields(task.inputs) if f.metadata.get("cli") is not None}
    extra = {p.name for p in getattr(task.inputs, "cli_params", ())}
    indirect = {f.name for f in dataclasses.fields(task.inputs) if f.metadata.get("cli") is None}
    assert indirect <= {"prompt", "image", "keys", "clips"}, "fields set from CLI-only params need from_cli"
    assert not indirect or hasattr(task.inputs, "from_cli")
    assert direct | extra <= params
    shown = {f.name for f in option_fields(cli=True)}
    if task.generates:
        assert shown <= params and OPTIONS - shown == set(NOT_RECORDED)
        assert params - direct - extra - shown == {"output", "force", "resume", "quiet", "dry_run"}
    else:
        assert not (shown - direct) & params  # (its own --window is the deflicker window)


def test_cli_flags_leave_defaults_to_the_table():
    """A flag not given is None (or off), so the table's default applies; its help shows it."""
    command = next(c for c in cli.app.registered_commands if c.name == "extend")
    params = inspect.signature(command.callback).parameters
    for f in option_fields(cli=True):
        assert params[f.name].default in (None, False), f.name


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_batch_schema_is_the_tasks_inputs_and_the_options(name):
    task = TASKS[name]
    fields = {f.name for f in dataclasses.fields(task.inputs)}
    options = OPTIONS - set(NOT_RECORDED) if task.generates else set()
    assert job_keys(name) == fields | options | JOB_KEYS | SUGAR.get(name, set())


def test_the_default_preset_keeps_known_frames_and_generate_guides_as_the_release():
    """The default preset guides weakly (it keeps the user's frames best); plain text-to-video has
    nothing to keep and guides as the backbone's own pipeline; an option given wins in both."""
    from vidzero.runs.options import DEFAULT_PRESET, PRESETS, RELEASE_GUIDANCE
    from vidzero.tasks import build_spec
    from vidzero.tasks.generate import GenerateInputs

    assert PRESETS[DEFAULT_PRESET]["guidance"] < RELEASE_GUIDANCE == PRESETS["paper"]["guidance"]
    plain = build_spec(GenerateInputs("a red circle"), RunOptions(), set())
    assert plain.options.guidance == RELEASE_GUIDANCE and plain.options.resample == 0
    given = build_spec(GenerateInputs("a red circle"), RunOptions(guidance=3.0), {"guidance"})
    assert given.options.guidance == 3.0
