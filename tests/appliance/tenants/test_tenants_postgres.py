"""Tenants of a home whose stores live in PostgreSQL: each tenant's state is its own schema
(``tenant_<name>``), the administrator's is ``state``, every tenant reads the shared
``knowledge`` schema and none may import into it (moving an embedded home with tenants:
test_tenants_migrate.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance import tenancy
from appliance.home import DATABASE_URL_ENV, Home
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.appliance.tenants.test_tenants import AT, ok, run


@pytest.fixture
def site(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.delenv(tenancy.ENV, raising=False)
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    base = tmp_path / "home"
    ok(base, "init")
    install_knowledge(Home(base))
    ok(base, "init", "--tenant", "acme")
    ok(base, "init", "--tenant", "globex")
    layout = tmp_path / "layout"
    build_image(layout, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    ok(base, "--tenant", "acme", "images", "load", f"oci:{layout}", "--tag", "app:1")
    code, stdout, err = run(base, "--tenant", "acme", "--json", "gate", "app:1", "--at", AT)
    assert code == 3, err  # FAIL: the critical advisory of the shared knowledge
    return {"base": base, "url": pg_url, "tmp": tmp_path, "verdict": json.loads(stdout)}


def verdict_count(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'verdicts'",
            (schema,),
        ).fetchone()
        if found is None or found[0] == 0:
            return 0
        row = conn.execute(f"SELECT count(*) FROM {schema}.verdicts").fetchone()  # noqa: S608 - a schema name of this test
        return int(row[0]) if row is not None else 0


def test_each_tenants_state_is_its_own_schema(site: dict[str, Any]) -> None:
    assert site["verdict"]["verdict"] == "FAIL"
    assert verdict_count(site["url"], "tenant_acme") == 1
    assert verdict_count(site["url"], "tenant_globex") == 0
    assert verdict_count(site["url"], "state") == 0
    assert not (site["base"] / "tenants" / "acme" / "state.db").exists()
    assert ok(site["base"], "--tenant", "globex", "images", "list")["images"] == []
    audit = ok(site["base"], "--tenant", "acme", "audit", "verify")
    assert audit["ok"] is True


def test_a_tenant_cannot_import_into_the_shared_knowledge(site: dict[str, Any]) -> None:
    bundle = site["tmp"] / "any.stella.tar.zst"
    bundle.write_bytes(b"not read")
    code, _, err = run(site["base"], "--tenant", "acme", "import", str(bundle))
    assert code != 0
    assert "on PostgreSQL the knowledge is shared" in err, err
    assert "Traceback" not in err
