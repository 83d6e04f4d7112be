"""pyproject.toml declares what the code imports, and the code imports what it declares.

Imports are read as scripts/check_layers.py reads them (every import, wherever it stands);
each top-level name is mapped to the distribution that installs it with
``importlib.metadata.packages_distributions``. Something that arrives only through another
dependency (tuf through sigstore, rich through textual) must still be declared when the code
imports it, and a runtime dependency nothing imports must go.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("bundles", "mirror", "appliance", "tui")
TOOLING = ("tests", "images", "bench", "scripts")
OURS = frozenset({*RUNTIME, *TOOLING})
NOT_OURS = ("images/app/", "tests/data/")  # the fixture image's own program; test inputs


def _load_check_layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts/check_layers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_layers", module)
    spec.loader.exec_module(module)
    return module


check_layers = _load_check_layers()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@cache
def providers() -> Mapping[str, list[str]]:
    """Top-level module name → the distributions installing it (slow to read: read once)."""
    return packages_distributions()


def declared(*extras: str) -> set[str]:
    """Canonical names of [project] dependencies, plus those of the named extras."""
    lines = list(PROJECT["dependencies"])
    for extra in extras:
        lines += PROJECT["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(line).name) for line in lines}


@cache
def third_party(packages: tuple[str, ...]) -> dict[str, list[str]]:
    """Top-level third-party module → the files (with line) that import it."""
    found: dict[str, list[str]] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(NOT_OURS):
                continue
            for line, module in check_layers.imported_modules(path):
                top = module.split(".")[0]
                if top and top not in sys.stdlib_module_names and top not in OURS:
                    found.setdefault(top, []).append(f"{rel}:{line}")
    return found


def undeclared(
    packages: tuple[str, ...], allowed: set[str], *, absent_ok: bool = False
) -> list[str]:
    """One line per imported module that no declared distribution installs. ``absent_ok``
    passes names nothing installs (tests name such modules to check refusals)."""
    problems = []
    for top, where in sorted(third_party(packages).items()):
        dists = {canonicalize_name(d) for d in providers().get(top, [])}
        if not dists and absent_ok and importlib.util.find_spec(top) is None:
            continue
        if not dists:
            problems.append(f"{top} (imported at {where[0]}) is installed by no distribution")
        elif not dists & allowed:
            problems.append(
                f"{top} (imported at {where[0]}) comes from {', '.join(sorted(dists))}, "
                f"which pyproject.toml does not declare"
            )
    return problems


def test_every_runtime_import_is_a_declared_dependency() -> None:
    assert undeclared(RUNTIME, declared("postgres")) == []


def test_every_declared_dependency_is_imported_by_the_packages() -> None:
    imported = {
        canonicalize_name(d) for top in third_party(RUNTIME) for d in providers().get(top, [])
    }
    assert sorted(declared() - imported) == []


def test_tests_and_tools_import_only_what_the_project_or_its_extras_declare() -> None:
    assert undeclared(TOOLING, declared("test", "lint", "postgres"), absent_ok=True) == []


def test_the_check_names_an_undeclared_import() -> None:
    problems = undeclared(RUNTIME, declared("postgres") - {"tuf"})  # the scale-out extra too
    assert len(problems) == 1
    assert problems[0].startswith("tuf (imported at bundles/")
    assert problems[0].endswith(") comes from tuf, which pyproject.toml does not declare")
