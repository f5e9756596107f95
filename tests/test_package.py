"""The installed package: a fast start, a consistent public API, nothing of the research code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    exported = set(vidzero._EXPORTS) | {"__version__"}
    assert set(vidzero.__all__) == exported
    for name in vidzero.__all__:
        assert getattr(vidzero, name) is not None, name
    assert vidzero.load_backbone is not None


def test_the_package_does_not_import_the_recipes():
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "tasks").glob("*.py")]:
        text = path.read_text()
        assert "import recipes" not in text and "from recipes" not in text, path
