"""The import-layering rule of shared/DESIGN.md §2 holds, and the check can fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts/check_layers.py")
assert _spec is not None
assert _spec.loader is not None
check_layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_layers)


RULE = "(allowed: tui → appliance → bundles ← mirror)"


def test_repository_respects_the_layering() -> None:
    assert check_layers.check(ROOT) == []


def test_violations_are_reported(tmp_path: Path) -> None:
    for pkg in ("bundles", "mirror", "appliance", "tui"):
        (tmp_path / pkg).mkdir()
    (tmp_path / "bundles/x.py").write_text("import mirror.fetch\n")
    (tmp_path / "mirror/y.py").write_text("from appliance import cli\nimport requests\n")
    (tmp_path / "appliance/z.py").write_text("import sqlite3\nfrom bundles import digest\n")
    (tmp_path / "tui/w.py").write_text("import appliance\nimport sqlite3\n")
    (tmp_path / "appliance/cli.py").write_text('cli.add_lazy("sync", "mirror.commands:sync_cmd")\n')
    problems = check_layers.check(tmp_path)
    assert problems == [
        f"bundles/x.py:1: bundles must not import mirror {RULE}",
        f"mirror/y.py:1: mirror must not import appliance {RULE}",
        "mirror/y.py:2: imports network client requests; only bundles/distribution, "
        "mirror/fetch, appliance/registry may speak HTTP",
        f"appliance/cli.py:1: appliance must not import mirror {RULE}",
        "appliance/z.py:1: imports sqlite3; only the store modules (appliance/store, "
        "appliance/scanner/cache, appliance/scanner/analyzers/rpm, mirror/store) may touch SQLite",
        "tui/w.py:2: imports sqlite3; only the store modules (appliance/store, "
        "appliance/scanner/cache, appliance/scanner/analyzers/rpm, mirror/store) may touch SQLite",
    ]
