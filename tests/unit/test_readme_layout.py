"""README.md's "How it works" names every folder and module of the package, and nothing else."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import casewatch

README = Path(__file__).parents[2] / "README.md"
PACKAGE = Path(casewatch.__file__).parent
# A Markdown table row whose first cell is one code span: `kafka/`, `errors.py`, ...
_ROW = re.compile(r"^\| `([^`]+)` \|")
_MODULE_PATH = re.compile(r"`(?:python -m )?(casewatch(?:\.\w+)+)`")


def how_it_works() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## How it works\n", 1)[1]
    return section.split("\n## ", 1)[0]


def documented_entries(section: str) -> list[str]:
    return [match[1] for line in section.splitlines() if (match := _ROW.match(line))]


def package_entries() -> set[str]:
    folders = {
        f"{path.name}/"
        for path in PACKAGE.iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    }
    modules = {path.name for path in PACKAGE.glob("*.py") if not path.name.startswith("_")}
    return folders | modules


def test_the_section_lists_every_folder_and_top_level_module_once() -> None:
    listed = documented_entries(how_it_works())
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert set(listed) == package_entries()


def test_the_listed_subpackages_are_the_stages_of_the_flow() -> None:
    section = how_it_works()
    subpackages = {
        name
        for name in package_entries()
        if name.endswith("/") and (PACKAGE / name / "__init__.py").exists()
    }
    assert subpackages == {
        "kafka/", "state/", "scoring/", "daemon/", "telemetry/", "offline/", "cli/"
    }  # fmt: skip
    diagrams = section.split("```")[1::2]
    assert len(diagrams) >= 2, "the data flow and the package diagram"
    for name in subpackages:
        assert name in diagrams[1], f"{name} is missing from the package diagram"


def test_every_module_path_the_readme_names_exists() -> None:
    own = {name.removesuffix("/").removesuffix(".py") for name in package_entries()}
    for path in _MODULE_PATH.findall(README.read_text(encoding="utf-8")):
        first = path.split(".")[1]
        # Header and metadata keys (casewatch.error.reason, ...) share the prefix: only names
        # that start with one of the package's own entries, or a private name, are module paths.
        if first in own or first.startswith("_"):
            assert importlib.util.find_spec(path) is not None, f"README names {path}"
