"""What one source file names (``python_facts``), and how the closures join files
(``pyreach.Analysis``): each way of naming a function the issue lists, locals that shadow a
module name, methods through ``self``, re-exports, and what the reading cannot follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.pyfacts import python_facts
from appliance.scanner.pyreach import Analysis, PythonProgram, Root, module_map, module_name
from appliance.scanner.walk import walk_rootfs


def refs(source: str, scope: str = "") -> list[str]:
    facts = python_facts(source)
    assert "e" not in facts, facts
    found: list[str] = facts["s"].get(scope, [])
    return found


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        ("from m import f\nf(1)\n", "", "f"),
        ("import m\nm.f(1)\n", "", "m.f"),
        ("import m as x\nx.f(1)\n", "", "x.f"),
        ("import m\ng = m.f\n", "", "m.f"),  # attribute access, not only calls
        ("import m\ndef run():\n    return m.f()\n", "run", "m.f"),
        ("class C:\n    def a(self):\n        self.b()\n    def b(self): pass\n", "C.a", "C.b"),
        ("import m\ngetattr(m, 'f')\n", "", "m.f"),  # a constant getattr is a reference
    ],
)
def test_each_way_of_naming_a_function(source: str, scope: str, expected: str) -> None:
    assert expected in refs(source, scope)


def test_bindings_keep_what_was_written() -> None:
    facts = python_facts("import a.b\nimport c as d\nfrom .e import f as g\nfrom h import *\n")
    assert facts["b"] == {"a": ["a"], "d": ["c"], "g": [".e.f"]}
    assert facts["y"] == ["h"]


def test_a_local_shadows_the_module_name_but_keeps_its_attribute() -> None:
    source = "from m import patch\ndef f(v):\n    major, patch = v\n    patch.x\n    return patch\n"
    found = refs(source, "f")
    assert "patch" not in found
    assert "?x" in found  # read from an object the reading cannot name


def test_base_classes_are_kept_apart_from_references() -> None:
    facts = python_facts("from m import Base\nclass C(Base):\n    pass\n")
    assert facts["c"] == {"C": ["Base"]}
    assert "Base" not in facts["s"][""]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("import importlib, sys\nimportlib.import_module(sys.argv[1])\n", "import"),
        ("import sys\n__import__(sys.argv[1])\n", "import"),
        ("import sys\nexec(sys.stdin.read())\n", "exec"),
        ("import m, sys\ngetattr(m, sys.argv[1])\n", "getattr"),
    ],
)
def test_what_cannot_be_followed_is_a_dynamic_site(source: str, kind: str) -> None:
    [site] = python_facts(source)["x"]
    assert site[0] == ""
    assert site[2] == kind


def test_constant_dynamic_imports_are_imports() -> None:
    facts = python_facts(
        "import importlib\nimportlib.import_module('a.b')\n"
        "for name in ('c', 'd'):\n    __import__(name)\n"
    )
    assert facts["i"] == ["a.b", "c", "d"]
    assert "x" not in facts


def test_a_file_that_does_not_parse_says_why() -> None:
    assert python_facts("print 'python 2'\n")["e"].startswith("SyntaxError at line 1")
    deep = "x = " + "(" * 5000 + ")" * 5000 + "\n"
    assert "e" in python_facts(deep)
    assert "e" not in python_facts("s = '\\o/'\n")  # a warning at compile time is no error


def test_module_names_from_paths() -> None:
    assert module_name("a/b.py") == "a.b"
    assert module_name("a/__init__.py") == "a"
    assert module_name("a/_x.cpython-311-x86_64-linux-gnu.so") == "a._x"
    assert module_name("a-b/c.py") is None
    assert module_map(["s/a/__init__.py", "s/a.py", "t/a/b.py"], ["s", "t"]) == {
        "a": "s/a/__init__.py",
        "a.b": "t/a/b.py",
    }


def _program(files: dict[str, str]) -> PythonProgram:
    site = "site"
    paths = {f"{site}/{k}": v for k, v in files.items()}
    modules = module_map([p for p in paths if p != "app/main.py"], [site])
    return PythonProgram(
        roots=(Root("app/main.py", "__main__", ("app/main.py",)),),
        modules=modules,
        owners={p: "pkg:pypi/lib@1" for p in paths},
        imports={},
        facts={
            ("app/main.py" if k == "main.py" else f"{site}/{k}"): python_facts(v)
            for k, v in files.items()
        },
    )


LIB: dict[str, str] = {
    "lib/__init__.py": "from .core import *\nfrom .api import get\n",
    "lib/core.py": "def encode(s):\n    return _check(s)\ndef _check(s):\n    return s\n",
    "lib/api.py": "from .core import encode\ndef get(u):\n    return encode(u)\n"
    "def unused():\n    return 1\n",
}


def _analysis(main: str) -> Analysis:
    program = _program({**LIB, "main.py": main})
    imports: dict[str, Any] = {
        "app/main.py": ("lib",),
        "site/lib/__init__.py": (".core", ".api", ".api.get"),
        "site/lib/api.py": (".core", ".core.encode"),
    }
    return Analysis(
        PythonProgram(program.roots, program.modules, program.owners, imports, program.facts)
    )


def test_reexports_and_the_chain() -> None:
    analysis = _analysis("import lib\nlib.get('x')\n")
    assert "lib.core:_check" in analysis.static
    assert analysis.chain("lib.core:_check") == (
        "/app/main.py",
        "lib.api.get",
        "lib.core.encode",
        "lib.core._check",
    )
    assert "lib.api:unused" not in analysis.parent  # neither reached nor possible


def test_a_computed_import_rules_nothing_out() -> None:
    analysis = _analysis(
        "import importlib, sys, lib\nm = importlib.import_module(sys.argv[1])\nm.unused()\n"
    )
    assert "lib.api:unused" not in analysis.static
    assert analysis.escaped  # so nothing outside the static closure is claimed unreached
    [site] = analysis.sites
    assert site.text() == "/app/main.py:2 (import importlib.import_module)"
    assert not _analysis("import lib\n").escaped


def test_the_closure_kept_with_the_scan_answers_the_same() -> None:
    analysis = _analysis("import lib\nlib.encode('x')\n")
    program = _program({**LIB, "main.py": "import lib\nlib.encode('x')\n"})
    kept = Analysis(
        PythonProgram(
            program.roots, program.modules, program.owners, {}, program.facts, analysis.closure()
        )
    )
    assert kept.parent == analysis.parent
    assert kept.static == analysis.static
    assert kept.chain("lib.core:encode") == analysis.chain("lib.core:encode")


def test_a_source_over_the_cap_is_not_parsed_and_leaves_the_trace_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STELLA_LIMIT_SCAN_PYTHON_FACTS_BYTES", "64")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "small.py").write_text("import os\n")
    (tmp_path / "app" / "big.py").write_text("import os\n" + "x = 1\n" * 40)
    record = walk_rootfs(tmp_path, AnalyzerTable([]))
    assert record.pysource["app/small.py"] == "import os\n"
    assert record.pysource["app/big.py"] is None  # kept unparsed
    program = PythonProgram(
        roots=(Root("app/main.py", "__main__", ("app/main.py",)),),
        modules={"big": "app/big.py", "small": "app/small.py"},
        imports={"app/main.py": ("big", "small")},
        facts={"app/main.py": python_facts("import big, small\n")},
    )

    def load(path: str) -> dict[str, Any] | None:
        text = record.pysource.get(path)
        return python_facts(text) if text is not None else {"e": "over the cap"}

    analysed = program.analysed(load)
    assert analysed.closure is not None
    assert analysed.closure.blind == ("app/big.py",)
    assert sorted(analysed.facts) == ["app/big.py", "app/main.py", "app/small.py"]
