"""The cap registry: values, overrides, refusals, and docs/limits.md kept in step."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from bundles import limits
from bundles.errors import UsageError
from bundles.limits import Cap, LimitError, Unit, check, exceeded, parse_amount

REPO = Path(__file__).resolve().parents[2]
_PROBE = Cap("test.probe_bytes", 1 << 20, Unit.BYTES, "the probe")


def test_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _PROBE.env == "STELLA_LIMIT_TEST_PROBE_BYTES"
    assert _PROBE.value() == 1 << 20
    monkeypatch.setenv(_PROBE.env, "3M")
    assert _PROBE.value() == 3 << 20
    monkeypatch.setenv(_PROBE.env, "2GiB")
    assert _PROBE.value() == 2 << 30
    monkeypatch.setenv(_PROBE.env, "12345")
    assert _PROBE.value() == 12345


@pytest.mark.parametrize("raw", ["-1", "0", "1.5M", "lots", "3X"])
def test_bad_override_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(_PROBE.env, raw)
    with pytest.raises(UsageError) as e:
        _PROBE.value()
    assert e.value.diagnostics() == (
        f"STELLA_LIMIT_TEST_PROBE_BYTES={raw!r} is not a valid bytes cap "
        "(give a positive whole number, optionally with K, M, G or T)"
    )


def test_suffix_refused_for_a_depth() -> None:
    depth = Cap("test.depth", 64, Unit.DEPTH, "nesting")
    with pytest.raises(UsageError):
        parse_amount("2K", depth)
    assert parse_amount("128", depth) == 128


def test_check_names_the_cap_and_the_variable() -> None:
    check(_PROBE, 1 << 20, "x.json")
    with pytest.raises(LimitError) as e:
        check(_PROBE, (1 << 20) + 1, "x.json")
    assert e.value.cap is _PROBE
    assert e.value.diagnostics() == (
        "x.json: the probe is over the test.probe_bytes cap of 1 MiB (found 1,048,577 bytes) "
        "(if this input is trusted and that large, raise the cap with "
        "STELLA_LIMIT_TEST_PROBE_BYTES=N (docs/limits.md))"
    )
    assert "found" not in exceeded(_PROBE, "y").message


def test_declaring_twice_is_refused() -> None:
    limits.cap("test.once", 1, Unit.COUNT, "once")
    with pytest.raises(RuntimeError, match="declared twice"):
        limits.cap("test.once", 1, Unit.COUNT, "once")
    with pytest.raises(ValueError, match="dotted"):
        limits.cap("Bad Name", 1, Unit.COUNT, "x")


def _import_everything() -> None:
    for package in ("bundles", "mirror", "appliance"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)


def test_docs_list_every_cap_with_its_default() -> None:
    _import_everything()
    table = (REPO / "docs/limits.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| ([^|]+?) \|", table, re.M))
    declared = {n: c for n, c in limits.CAPS.items() if not n.startswith("test.")}
    assert sorted(rows) == sorted(declared), "docs/limits.md and the declared caps differ"
    for name, c in declared.items():
        assert rows[name] == c.describe(c.default), name
