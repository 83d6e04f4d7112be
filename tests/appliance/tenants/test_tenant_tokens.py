"""Tenants whose keys live in a PKCS#11 token (SoftHSM2): ``stella --tenant NAME init
--signer pkcs11:…`` gives each tenant its token key, each tenant's verdicts are signed by its
own key, and a tenant whose URI names a key another tenant (or the home) already signs with
is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import tenancy
from appliance.home import Home
from bundles.pkcs11_uri import PIN_ENV
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.appliance.tenants.test_tenants import AT, ok, refused, run
from tests.softhsm import PIN, SoftHsm, softhsm


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm(tmp_path_factory)


def test_each_tenant_signs_with_its_own_token_key(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    monkeypatch.delenv(tenancy.ENV, raising=False)
    base = tmp_path / "home"
    admin_uri = hsm.uri(f"admin-{tmp_path.name}")
    ok(base, "init", "--signer", admin_uri)
    install_knowledge(Home(base))
    uris = {name: hsm.uri(f"{name}-{tmp_path.name}") for name in ("acme", "globex")}
    keyids = {}
    layout = tmp_path / "layout"
    build_image(layout, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    for name, uri in uris.items():
        keyids[name] = ok(base, "--tenant", name, "init", "--signer", uri)["keyid"]
        ok(base, "--tenant", name, "images", "load", f"oci:{layout}", "--tag", "app:1")
        out = tmp_path / f"{name}.rva.json"
        code, _, err = run(base, "--tenant", name, "gate", "app:1", "--at", AT, "--out", str(out))
        assert code == 3, err
        verified = ok(base, "--tenant", name, "verify", str(out))
        assert verified["signer"]["keyid"] == keyids[name]
    assert keyids["acme"] != keyids["globex"]

    # another tenant naming acme's token key, or the home's, is refused and left uncreated
    refused(base, "--tenant", "initech", "init", "--signer", uris["acme"], expect="already signs")
    refused(base, "--tenant", "umbrella", "init", "--signer", admin_uri, expect="administrator")
    for name in ("initech", "umbrella"):
        assert not (base / "tenants" / name / "config.json").exists()
        assert not (base / "tenants" / name / tenancy.TENANT_MARKER).exists()
    # a key rotation to another tenant's token key is refused the same way
    refused(
        base, "--tenant", "globex", "keys", "rotate", "--signer", uris["acme"], expect="already"
    )
    # ... and can be created afterwards with a key of its own
    ok(base, "--tenant", "initech", "init", "--signer", hsm.uri(f"initech-{tmp_path.name}"))
