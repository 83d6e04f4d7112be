"""scripts/check_layers.py refuses what the dependency rule forbids, each with one clear line:
a package importing the wrong package, a room importing a room above it, an import circle, a
network or SQLite import outside its modules, and tables that name what does not exist.

The trees are small synthetic ones under tmp_path; the project's own tree is checked by
``make lint``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts/check_layers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_layers", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check_layers = _load()
RULE = "(allowed: tui → appliance → bundles ← mirror)"
ROOMS = {
    "appliance/__init__": (),
    "appliance/home": (),
    "appliance/store": ("appliance/home",),
    "appliance/vex": ("appliance/store",),
    "appliance/registry": ("appliance/store",),
    "appliance/cli": ("appliance/vex", "appliance/registry"),
}
RULES = check_layers.Rules(
    rooms=ROOMS,
    network_allowed=("mirror/fetch", "appliance/registry"),
    sqlite_allowed=("appliance/store",),
    postgres_allowed=("appliance/store",),
)
BASE = {
    "bundles/__init__.py": "",
    "mirror/__init__.py": "",
    "mirror/fetch.py": "import requests\nimport ssl\n",
    "tui/__init__.py": "",
    "appliance/__init__.py": "",
    "appliance/home.py": "",
    "appliance/store/__init__.py": "",
    "appliance/store/db.py": "import sqlite3\nfrom appliance.home import Home\n",
    "appliance/vex/__init__.py": "",
    "appliance/vex/model.py": "from appliance.store import db\n",
    "appliance/registry/__init__.py": "",
    "appliance/registry/server.py": (
        "import socket\nimport ssl\nfrom http.server import ThreadingHTTPServer\n"
    ),
    "appliance/cli.py": "from appliance.vex import model\nfrom appliance.registry import server\n",
}


def check(root: Path, files: dict[str, str], rules: object = RULES) -> list[str]:
    for rel, text in {**BASE, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    problems: list[str] = check_layers.check(root, rules)
    return problems


def test_a_tree_that_keeps_every_rule_passes(tmp_path: Path) -> None:
    assert check(tmp_path, {}) == []


def test_packages_import_only_what_the_rule_allows(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        {
            "bundles/x.py": "import mirror.fetch\n",
            "mirror/y.py": "from appliance import cli\n",
            "tui/w.py": "import appliance\n",
            "appliance/cli.py": 'cli.add_lazy("sync", "mirror.commands:sync_cmd")\n',
        },
    )
    assert problems == [
        f"bundles/x.py:1: bundles must not import mirror {RULE}",
        f"mirror/y.py:1: mirror must not import appliance {RULE}",
        f"appliance/cli.py:1: appliance must not import mirror {RULE}",
    ]


def test_a_circle_is_refused_naming_every_hop_lazy_and_type_only_imports_included(
    tmp_path: Path,
) -> None:
    problems = check(
        tmp_path,
        {
            "bundles/a.py": "from bundles.b import thing\n",
            "bundles/b.py": "def f():\n    from bundles import errors, c  # lazy, and two names\n",
            "bundles/c.py": (
                "from typing import TYPE_CHECKING\n\n"
                "if TYPE_CHECKING:\n    from bundles.a import A\n"
            ),
        },
    )
    assert problems == [
        "bundles/a.py:1: import circle: bundles.a → bundles.b (bundles/b.py:2) → "
        "bundles.c (bundles/c.py:4) → bundles.a; move what both sides need into a module "
        "below them"
    ]


def test_a_circle_through_a_lazily_registered_command_is_refused(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        {
            "bundles/cli.py": 'cli.add_lazy("run", "bundles.run:command")\n',
            "bundles/run.py": 'import importlib\nimportlib.import_module("bundles.cli")\n',
        },
    )
    assert problems == [
        "bundles/cli.py:1: import circle: bundles.cli → bundles.run (bundles/run.py:2) → "
        "bundles.cli; move what both sides need into a module below them"
    ]


def test_a_room_must_not_import_a_room_above_it(tmp_path: Path) -> None:
    problems = check(tmp_path, {"appliance/store/rows.py": "from appliance.vex.model import X\n"})
    assert problems == [
        "appliance/store/rows.py:1: room appliance/store must not import appliance.vex.model "
        "(room appliance/vex, above it); appliance/store may import: appliance/home"
    ]


def test_a_room_may_import_what_the_rooms_below_it_may(tmp_path: Path) -> None:
    # cli names vex, vex names store, store names home: cli may import home directly
    assert check(tmp_path, {"appliance/cli.py": "from appliance import home\n"}) == []


def test_rooms_that_do_not_name_each_other_stay_apart(tmp_path: Path) -> None:
    problems = check(tmp_path, {"appliance/vex/push.py": "from appliance.registry import server\n"})
    assert problems == [
        "appliance/vex/push.py:1: room appliance/vex must not import appliance.registry.server "
        "(room appliance/registry, not below it in ROOMS); appliance/vex may import: "
        "appliance/home, appliance/store"
    ]


def test_a_module_in_no_room_is_refused(tmp_path: Path) -> None:
    problems = check(tmp_path, {"appliance/loose.py": ""})
    assert problems == [
        "appliance/loose.py:1: module in no room of ROOMS; declare its room and the rooms it "
        "may import in scripts/check_layers.py"
    ]


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import socket\n", "socket"),
        ("import socketserver\n", "socketserver"),
        ("from http.server import HTTPServer\n", "http.server"),
        ("from http import server\n", "http.server"),
        ("import ssl\n", "ssl"),
        ("from urllib import request\n", "urllib.request"),
        ("def f():\n    import requests\n", "requests"),
    ],
)
def test_a_network_import_outside_its_modules_is_refused(
    tmp_path: Path, source: str, module: str
) -> None:
    problems = check(tmp_path, {"appliance/vex/fetch.py": source})
    line = source.count("\n")
    assert problems == [
        f"appliance/vex/fetch.py:{line}: imports network module {module}; only mirror/fetch, "
        "appliance/registry may open or serve a connection"
    ]


@pytest.mark.parametrize(
    ("rel", "line"),
    [
        ("tui/w.py", "import psycopg"),
        ("appliance/vex/cache.py", "from psycopg import sql"),
        ("mirror/state.py", "import psycopg_pool"),
    ],
)
def test_a_postgres_import_outside_the_stores_is_refused(
    tmp_path: Path, rel: str, line: str
) -> None:
    problems = check(
        tmp_path, {rel: f"import os\n{line}\n", "appliance/store/pg.py": "import psycopg\n"}
    )
    module = line.split()[1]
    assert problems == [
        f"{rel}:2: imports {module}; only the store modules (appliance/store) may touch PostgreSQL"
    ]


@pytest.mark.parametrize("rel", ["tui/w.py", "appliance/vex/cache.py", "mirror/state.py"])
def test_a_sqlite_import_outside_the_stores_is_refused(tmp_path: Path, rel: str) -> None:
    problems = check(tmp_path, {rel: "import os\nimport sqlite3\n"})
    assert problems == [
        f"{rel}:2: imports sqlite3; only the store modules (appliance/store) may touch SQLite"
    ]


def test_an_allowed_entry_is_a_module_or_a_package_not_a_prefix_of_a_name(
    tmp_path: Path,
) -> None:
    rules = check_layers.Rules(
        rooms=ROOMS,
        network_allowed=("mirror/fetch", "appliance/registry"),
        sqlite_allowed=("appliance/store", "mirror/db"),
        postgres_allowed=("appliance/store",),
    )
    problems = check(tmp_path, {"mirror/db.py": "", "mirror/dbtool.py": "import sqlite3\n"}, rules)
    assert problems == [
        "mirror/dbtool.py:1: imports sqlite3; only the store modules (appliance/store, "
        "mirror/db) may touch SQLite"
    ]


def test_tables_that_name_what_does_not_exist_or_run_in_a_circle_are_refused(
    tmp_path: Path,
) -> None:
    rules = check_layers.Rules(
        rooms={
            **ROOMS,
            "appliance/home": ("appliance/cli",),  # cli → … → store → home → cli
            "appliance/vex": ("appliance/store", "appliance/policy"),
            "appliance/gone": (),
        },
        network_allowed=("mirror/fetch", "appliance/registry"),
        sqlite_allowed=("appliance/store", "mirror/store"),
        postgres_allowed=("appliance/store",),
    )
    problems = check(tmp_path, {}, rules)
    table = "scripts/check_layers.py: "
    assert problems == [
        f"{table}the tables name appliance/gone, which does not exist (neither "
        "appliance/gone.py nor appliance/gone/): remove the entry or fix its path",
        f"{table}the tables name mirror/store, which does not exist (neither mirror/store.py "
        "nor mirror/store/): remove the entry or fix its path",
        f"{table}room appliance/vex may import appliance/policy, which is not a room of "
        "ROOMS: declare it",
        f"{table}the floors of ROOMS run in a circle: appliance/cli → appliance/registry → "
        "appliance/store → appliance/home → appliance/cli; a room names only rooms below it",
    ]


def test_the_command_prints_one_line_each_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    check(tmp_path, {"tui/w.py": "import sqlite3\n"})
    monkeypatch.setattr(check_layers, "RULES", RULES)
    monkeypatch.setattr(sys, "argv", ["check_layers.py", str(tmp_path)])
    assert check_layers.main() == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "layering: 1 violation(s)"
    assert out[0].startswith("tui/w.py:1: imports sqlite3;")
