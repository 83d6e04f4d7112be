#!/usr/bin/env python3
"""Enforce the dependency rule of shared/DESIGN.md §2: ``tui → appliance → bundles ← mirror``.

Every module of the four packages is parsed (never imported) and each import is checked
against two tables: which of the project's packages a package may import, and which modules
may import a network client or sqlite3. Exits 1 with one line per violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bundles", "mirror", "appliance", "tui")

# Which of the project's packages each package may import (itself included).
ALLOWED = {
    "bundles": {"bundles"},
    "mirror": {"mirror", "bundles"},
    "appliance": {"appliance", "bundles"},
    "tui": {"tui", "appliance", "bundles"},
}

# Modules that may speak HTTP. On the connected side: feed fetching and the registry client.
# On the appliance: only the registry push client and the registry server, which serve the
# enclave's own network and are never used by import, scan, match or gate.
NETWORK_MODULES = {"requests", "urllib3", "httpx", "oras", "http.client", "urllib.request"}
NETWORK_ALLOWED = ("bundles/distribution", "mirror/fetch", "appliance/registry")

# Only the stores touch SQLite; the TUI never does.
SQLITE_MODULES = {"sqlite3", "sqlite_utils"}
SQLITE_ALLOWED = (
    "appliance/store",
    "appliance/scanner/cache",
    "appliance/scanner/analyzers/rpm",  # reads an image's rpmdb.sqlite, read-only
    "mirror/store",
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (  # commands registered lazily: cli.add_lazy("name", "package.module:attribute")
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_lazy"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            found.append((node.lineno, node.args[1].value.partition(":")[0]))
    return found


def _matches(module: str, names: set[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def check(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for line, module in imported_modules(path):
                top = module.split(".")[0]
                if top in PACKAGES and top not in ALLOWED[package]:
                    problems.append(
                        f"{rel}:{line}: {package} must not import {top} "
                        f"(allowed: tui → appliance → bundles ← mirror)"
                    )
                if _matches(module, NETWORK_MODULES) and not rel.startswith(NETWORK_ALLOWED):
                    problems.append(
                        f"{rel}:{line}: imports network client {module}; only "
                        f"{', '.join(NETWORK_ALLOWED)} may speak HTTP"
                    )
                if _matches(module, SQLITE_MODULES) and not rel.startswith(SQLITE_ALLOWED):
                    problems.append(
                        f"{rel}:{line}: imports {module}; only the store modules "
                        f"({', '.join(SQLITE_ALLOWED)}) may touch SQLite"
                    )
    return problems


def main() -> int:
    problems = check(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} violation(s)")
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
