"""The package's layers and their direction: a module imports only from its own layer or the
layers below it (docs/layout.md), at module level or inside a function alike."""

from __future__ import annotations

import ast
from pathlib import Path

import vidzero

PACKAGE = Path(vidzero.__file__).parent
TASKS = PACKAGE.parent / "tasks"
# bottom up; a module's layer is the longest prefix of its name found here
LAYERS = [
    ("vidzero.errors", "vidzero.version"),
    ("vidzero.core",),
    ("vidzero.media",),
    ("vidzero.models",),
    ("vidzero.quality",),
    ("vidzero.runs",),
    ("vidzero.tasks",),
    ("vidzero.app",),
    ("vidzero",),
]
MAX_LINES = 400


def layer(module: str) -> int:
    best = (-1, -1)
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                best = max(best, (len(name), index))
    assert best[1] >= 0, module
    return best[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in TASKS.glob("*.py"):
        found["vidzero.tasks" if path.stem == "__init__" else f"vidzero.tasks.{path.stem}"] = path
    return found


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported vidzero module) for every import in the file, relative ones resolved."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "vidzero"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y: relative to the module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] == "vidzero":
                out.append((node.lineno, base))
    return out


def test_imports_go_down_the_layers_only():
    wrong = []
    for name, path in modules().items():
        for line, target in imports(name, path):
            if layer(target) > layer(name):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({name}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_found_by_name_at_run_time():
    """importlib only in the package's front door (its public names load on first use)."""
    for name, path in modules().items():
        if name != "vidzero":
            assert "importlib" not in path.read_text(), path


def test_modules_stay_small_or_say_why():
    for path in modules().values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            assert "lines" in docstring and "because" in docstring, f"{path}: over {MAX_LINES} lines, no reason given"


def test_every_module_has_its_line_in_the_layout_doc():
    doc = (PACKAGE.parent / "docs" / "layout.md").read_text()
    for path in sorted([*PACKAGE.rglob("*.py"), *TASKS.glob("*.py")]):
        if path.name == "__init__.py" and path.parent.name not in ("vidzero", "tasks"):
            continue  # a layer's empty package marker
        name = path.name if path.parent.name == "tasks" and path.name not in ("__init__.py", "common.py") else None
        shown = f"{path.parent.name}/{path.name}" if path.parent.name != "vidzero" else f"vidzero/{path.name}"
        assert shown in doc or (name is not None and name in doc), f"docs/layout.md does not describe {shown}"
