"""Real bundles into a home with tenants: the administrator's import is the shared knowledge
every tenant reads; a tenant's own import is verified with the tenant's own trust roots and
lands in the tenant's own knowledge store, leaving the shared one and the other tenants as
they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import tenancy
from tests.appliance.tenants.test_tenants import ok, refused, run
from tests.flow.conftest import Mirror


def active(base: Path, *tenant: str) -> str | None:
    rows = ok(base, *tenant, "snapshot", "list")["snapshots"]
    return next((r["digest"] for r in rows if r["active"]), None)


def test_shared_and_own_knowledge(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    monkeypatch.delenv(tenancy.ENV, raising=False)
    s0, s1, _ = mirror.snapshots
    root = str(mirror.keys / "history" / "trust-root.v1.json")
    full0, full1 = tmp_path / "full0.stella.tar.zst", tmp_path / "full1.stella.tar.zst"
    mirror.export(full0, "--snapshot", s0, "--sequence", "1")
    mirror.export(full1, "--snapshot", s1, "--sequence", "2")
    base = tmp_path / "home"
    ok(base, "init")
    ok(base, "trust", "add", root)
    assert ok(base, "import", str(full0))["snapshot"] == s0  # the shared knowledge
    for name in ("acme", "globex"):
        ok(base, "--tenant", name, "init")
        assert active(base, "--tenant", name) == s0

    # a tenant's imports are checked against its own trust roots: acme has none yet
    refused(base, "--tenant", "acme", "import", str(full1), expect="trust")
    assert not (base / "tenants" / "acme" / "knowledge.db").exists()
    assert active(base, "--tenant", "acme") == s0  # still on the shared knowledge

    ok(base, "--tenant", "acme", "trust", "add", root)
    assert ok(base, "--tenant", "acme", "import", str(full1))["snapshot"] == s1
    assert active(base, "--tenant", "acme") == s1  # its own store now
    assert active(base, "--tenant", "globex") == s0  # the other tenant is untouched
    assert active(base) == s0  # and so is the shared store
    records = ok(base, "--tenant", "acme", "audit", "list", "--action", "import")["records"]
    assert [r["action"] for r in records] == ["import.refused", "import"]
    assert records[1]["inputs"]["snapshot"] == s1
    assert all("--tenant acme " in r["actor"] for r in records)
    assert ok(base, "--tenant", "globex", "audit", "list", "--action", "import")["count"] == 0

    # the same bundle is still new to globex (sequences are per store), once it trusts it
    ok(base, "--tenant", "globex", "trust", "add", root)
    code, _, err = run(base, "--tenant", "globex", "import", str(full0))
    assert code == 0, err
    assert active(base, "--tenant", "globex") == s0
