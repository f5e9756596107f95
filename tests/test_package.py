"""The installed package: a fast start, a consistent public API, nothing of the research code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import vidzero

PACKAGE = Path(vidzero.__file__).parent
HEAVY = ("torch", "diffusers", "transformers", "cv2", "av")


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(out.stdout.split())


def test_import_and_help_load_no_heavy_library():
    """`import vidzero` and `vidzero --help` import neither torch nor diffusers (seconds each)."""
    for code in (
        "import vidzero",
        "from vidzero.app.cli import app\nimport contextlib\n"
        "with contextlib.suppress(SystemExit): app(['--help'], prog_name='vidzero')",
    ):
        loaded = modules_after(code)
        assert not loaded & set(HEAVY), (code, loaded & set(HEAVY))


def test_public_names_resolve_lazily_and_match_all():
    import importlib

    exported = set(vidzero._EXPORTS) | {"__version__"}
    assert set(vidzero.__all__) == exported
    for name, module in vidzero._EXPORTS.items():  # each name is its module's object of that name
        value = getattr(vidzero, name)
        assert value is getattr(importlib.import_module(module), name) and value.__name__ == name, name
    assert vidzero.__version__ == importlib.import_module("vidzero.version").__version__
    with pytest.raises(AttributeError, match="no attribute 'extnd'"):
        vidzero.extnd  # noqa: B018


def test_the_package_does_not_import_the_recipes():
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "tasks").glob("*.py")]:
        text = path.read_text()
        assert "import recipes" not in text and "from recipes" not in text, path


def test_the_readme_python_example_uses_real_names_and_keywords():
    """Every `vidzero.NAME(...)` in the README's Python block exists, and takes the keywords given."""
    import ast
    import inspect
    import re
    import typing

    import vidzero

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"## Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    calls = [
        node
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "vidzero"
    ]
    assert len(calls) >= 5
    for call in calls:
        function = getattr(vidzero, call.func.attr)
        params = inspect.signature(function).parameters
        accepted = set(params)
        for p in params.values():
            if p.kind == inspect.Parameter.VAR_KEYWORD:  # **options: Unpack[TypedDict]
                unpacked = typing.get_type_hints(function, include_extras=True)[p.name]
                accepted |= set(typing.get_type_hints(typing.get_args(unpacked)[0]))
        for keyword in call.keywords:
            assert keyword.arg in accepted, f"vidzero.{call.func.attr} takes no {keyword.arg}="
