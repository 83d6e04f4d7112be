"""The facts of an image's Python files, cached per layer: a cold and a warm cache give the
same facts, an upper layer's whiteout or new copy of a file wins over a lower layer's cached
facts, and a damaged or oversized row is read again, never trusted."""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from appliance.scanner import cache as cache_module
from appliance.scanner.cache import LayerCache, analyzers_key, source_digest
from appliance.scanner.jobs import scan_bounded
from appliance.scanner.pyfacts import python_facts, valid_facts
from appliance.scanner.result import ScanResult
from appliance.scanner.service import IMAGE_REGISTRY, scan_image
from bundles.digest import Digest
from tests.appliance.scanner.layouts import F, build_image, wh

SITE = "usr/local/lib/python3.11/dist-packages"
ENTRY = {"Entrypoint": ["/usr/bin/python3", "/app/main.py"], "WorkingDir": "/app"}
LOWER = [
    F("usr/bin/python3", b"\x7fELF stand-in", 0o755),
    F("usr/lib/python3.11/os.py"),
    F(f"{SITE}/pkg/__init__.py", b"from .mod import run\nfrom . import other\n"),
    F(f"{SITE}/pkg/mod.py", b"import json\n\ndef run():\n    return json.dumps(1)\n"),
    F(f"{SITE}/pkg/other.py", b"def unused():\n    pass\n"),
]
MAIN = F("app/main.py", b"import pkg\n\npkg.run()\n", 0o755)
NEW_MOD = b"def run():\n    return helper()\n\ndef helper():\n    return 2\n"


@pytest.fixture
def images(tmp_path: Path) -> dict[str, str]:
    """``plain``: the packages, then the program; ``deleted``: the same lower layer, and an
    upper one deleting pkg/mod.py; ``replaced``: an upper one writing pkg/mod.py anew."""
    layers = {
        "plain": [LOWER, [MAIN]],
        "deleted": [LOWER, [wh(f"{SITE}/pkg/mod.py"), MAIN]],
        "replaced": [LOWER, [F(f"{SITE}/pkg/mod.py", NEW_MOD), MAIN]],
    }
    for name, image in layers.items():
        build_image(tmp_path / name, image, tag="app:1", config=ENTRY)
    return {name: f"oci:{tmp_path / name}:app:1" for name in layers}


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the cache had to parse (the real parser, counted)."""
    calls: list[str] = []

    def counting(source: str | bytes) -> dict[str, Any]:
        calls.append(source if isinstance(source, str) else source.decode())
        return python_facts(source)

    monkeypatch.setattr(cache_module, "python_facts", counting)
    return calls


def program(result: ScanResult) -> dict[str, Any]:
    assert result.entry_trace.python is not None
    return result.entry_trace.python.to_dict()


def rows(cache: LayerCache) -> dict[tuple[str, str], bytes]:
    found = cache.db.query("SELECT layer, path, record FROM layer_facts")
    return {(layer, path): bytes(record) for layer, path, record in found}


def forget_images(cache: LayerCache) -> None:
    """Only the layers' records and facts are left: what a second image sharing them sees."""
    with cache.db.transaction() as conn:
        conn.execute("DELETE FROM image_results")


def test_cold_and_warm_layer_facts_are_the_same(
    tmp_path: Path, images: dict[str, str], parsed: list[str]
) -> None:
    uncached = scan_image(None, images["plain"], cache=False)
    with LayerCache.open(tmp_path / "c.db") as cache:
        cold = scan_image(None, images["plain"], cache=cache)
        kept = rows(cache)
        lower, upper = (str(layer.digest) for layer in cold.layers)
        assert {(lower, f"{SITE}/pkg/__init__.py"), (lower, f"{SITE}/pkg/mod.py")} <= set(kept)
        assert (upper, "app/main.py") in kept
        assert len(parsed) == len(kept)
        parsed.clear()
        forget_images(cache)
        warm = scan_image(None, images["plain"], cache=cache)
        assert warm.cached_layers == tuple(layer.digest for layer in cold.layers)
    assert parsed == []  # every fact came from the layers' rows
    assert json.dumps(program(warm)) == json.dumps(program(cold)) == json.dumps(program(uncached))
    assert warm.sbom_bytes() == cold.sbom_bytes() == uncached.sbom_bytes()
    assert f"{SITE}/pkg/mod.py" in program(warm)["facts"]


def test_an_upper_whiteout_removes_a_lower_layers_module(
    tmp_path: Path, images: dict[str, str], parsed: list[str]
) -> None:
    with LayerCache.open(tmp_path / "c.db") as cache:
        plain = scan_image(None, images["plain"], cache=cache)
        lower = str(plain.layers[0].digest)
        assert (lower, f"{SITE}/pkg/mod.py") in rows(cache)
        parsed.clear()
        deleted = scan_image(None, images["deleted"], cache=cache)
    assert deleted.cached_layers == (plain.layers[0].digest,)
    facts = program(deleted)
    assert "pkg.mod" not in facts["modules"]
    assert f"{SITE}/pkg/mod.py" not in facts["facts"]
    assert f"{SITE}/pkg/__init__.py" in facts["facts"]  # from the lower layer's row
    assert "pkg.mod" in program(plain)["modules"]
    assert parsed == ["import pkg\n\npkg.run()\n"]  # only the new layer's main.py
    assert program(deleted) == program(scan_image(None, images["deleted"], cache=False))


def test_an_upper_copy_of_a_file_replaces_the_lower_ones_facts(
    tmp_path: Path, images: dict[str, str]
) -> None:
    with LayerCache.open(tmp_path / "c.db") as cache:
        scan_image(None, images["plain"], cache=cache)
        replaced = scan_image(None, images["replaced"], cache=cache)
        upper = str(replaced.layers[1].digest)
        assert (upper, f"{SITE}/pkg/mod.py") in rows(cache)
        forget_images(cache)
        again = scan_image(None, images["replaced"], cache=cache)
    facts = program(replaced)
    assert "helper" in facts["facts"][f"{SITE}/pkg/mod.py"]["s"]
    assert "pkg.mod:helper" in facts["closure"]["static"]
    plain = program(scan_image(None, images["plain"], cache=False))
    assert "pkg.mod:helper" not in plain["closure"]["static"]
    assert program(again) == facts == program(scan_image(None, images["replaced"], cache=False))


def _seal(value: object) -> bytes:
    return zlib.compress(json.dumps(value).encode())


def test_a_damaged_row_is_parsed_again_and_replaced(
    tmp_path: Path, images: dict[str, str], parsed: list[str]
) -> None:
    mod = f"{SITE}/pkg/mod.py"
    init = f"{SITE}/pkg/__init__.py"
    other_facts = python_facts(b"def unused():\n    pass\n")
    with LayerCache.open(tmp_path / "c.db") as cache:
        first = scan_image(None, images["plain"], cache=cache)
        lower, upper = (str(layer.digest) for layer in first.layers)
        mod_source = source_digest(LOWER[3].data.decode())
        damaged = {
            (lower, mod): b"\x00not zlib",
            # well formed, but read from another text
            (lower, init): _seal({"source": "0" * 64, "facts": other_facts}),
            # the right text, facts of the wrong shape
            (upper, "app/main.py"): _seal(
                {"source": source_digest(MAIN.data.decode()), "facts": {"s": {"": 1}}}
            ),
        }
        with cache.db.transaction() as conn:
            for (layer, path), blob in damaged.items():
                conn.execute(
                    "UPDATE layer_facts SET record = ? WHERE layer = ? AND path = ?",
                    (sqlite3.Binary(blob), layer, path),
                )
        forget_images(cache)
        parsed.clear()
        again = scan_image(None, images["plain"], cache=cache)
        assert len(parsed) == 3  # each damaged row, and only those, read again
        key = analyzers_key(IMAGE_REGISTRY)
        assert cache.get_facts(Digest.parse(lower), key, mod, mod_source) is not None
        assert cache.get_facts(Digest.parse(lower), key, mod, "0" * 64) is None
    assert json.dumps(program(again)) == json.dumps(program(first))


def test_rows_are_bounded(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Digest.of_bytes(b"layer")
    facts: Mapping[str, Any] = python_facts("def f():\n    pass\n" * 20)
    with LayerCache.open(tmp_path / "c.db") as cache:
        monkeypatch.setattr(cache_module, "FACTS_ENTRY_BYTES", 64)
        cache.put_facts("k", [(layer, "big.py", "s", facts)])
        assert rows(cache) == {}  # over the bound: not kept
        monkeypatch.undo()
        cache.put_facts("k", [(layer, "big.py", "s", facts)])
        assert cache.get_facts(layer, "k", "big.py", "s") == facts
        monkeypatch.setattr(cache_module, "FACTS_ENTRY_BYTES", 64)
        assert cache.get_facts(layer, "k", "big.py", "s") is None  # inflates past it: a miss
        assert cache.prune("other") == 0
        assert rows(cache) == {}  # made with other versions: pruned


def test_a_bounded_job_keeps_the_facts_it_parsed(tmp_path: Path, images: dict[str, str]) -> None:
    in_process = scan_image(None, images["plain"], cache=False)
    with LayerCache.open(tmp_path / "c.db") as cache:
        cold = scan_bounded(None, images["plain"], cache=cache, audit=False)
        assert (str(cold.layers[0].digest), f"{SITE}/pkg/mod.py") in rows(cache)
        forget_images(cache)
        warm = scan_bounded(None, images["plain"], cache=cache, audit=False)
    assert program(cold) == program(warm) == program(in_process)


def test_the_shape_a_cached_copy_must_have() -> None:
    assert valid_facts(python_facts("import m\nexec(x)\nfrom a import *\n"))
    assert valid_facts({"e": "SyntaxError"})
    damaged: list[object] = [
        None,
        [],
        {"e": 1},
        {"e": "x", "b": {}},
        {"b": {}, "d": [], "c": {}},
        {"b": {}, "d": [], "c": {}, "s": {"": ["a", 1]}},
        {"b": {}, "d": [], "c": {}, "s": {}, "x": [["", "1", "import", "m"]]},
        {"b": {}, "d": [], "c": {}, "s": {}, "z": []},
    ]
    for bad in damaged:
        assert not valid_facts(bad), bad
