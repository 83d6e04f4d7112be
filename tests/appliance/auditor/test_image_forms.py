"""``verify``, ``explain`` and ``export-audit-package`` take IMAGE in the forms ``scan`` and
``gate`` take: a verdict gated from ``oci:DIR:TAG`` is found again by ``oci:DIR:TAG``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from tests.appliance.homes import SITE
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info


def stella(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def layout_gated(home: Home, tmp_path: Path) -> tuple[str, GateResult]:
    """An image in an OCI layout outside the store (a bare tag, as skopeo writes), gated."""
    build_image(tmp_path / "debian-app", [dist_info("requests", "2.19.0", SITE)], tag="bookworm")
    image = f"oci:{tmp_path / 'debian-app'}:bookworm"
    return image, gate(home, image, at=AT, now=lambda: t("2026-11-23T06:30:00Z"))


def test_verify_takes_an_oci_layout(home: Home, layout_gated: tuple[str, GateResult]) -> None:
    image, gated = layout_gated
    code, out, err = stella(home, "--json", "verify", image)
    assert (code, err) == (0, "")
    verified = json.loads(out)
    assert verified["statement"] == str(gated.statement_digest)


def test_explain_takes_an_oci_layout(home: Home, layout_gated: tuple[str, GateResult]) -> None:
    image, gated = layout_gated
    code, out, err = stella(home, "explain", image)
    assert (code, err) == (0, "")
    assert gated.verdict.verdict.value in out


def test_export_audit_package_takes_an_oci_layout(
    home: Home, layout_gated: tuple[str, GateResult], tmp_path: Path
) -> None:
    image, _ = layout_gated
    out = tmp_path / "audit.zip"
    code, _, err = stella(home, "export-audit-package", image, "--out", str(out))
    assert (code, err) == (0, "")
    pub = tmp_path / "appliance.pub"
    home.public_key().save(pub)
    code, text, err = stella(home, "verify-audit-package", str(out), "--key", str(pub))
    assert (code, err) == (0, "")
    assert text.startswith(f"OK  {out}: ")


def test_a_store_name_without_tag_means_latest_as_in_scan(home: Home, tmp_path: Path) -> None:
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="web:latest")
    gated = gate(home, "web", at=AT, now=lambda: t("2026-11-23T06:30:00Z"))
    code, out, err = stella(home, "--json", "verify", "web")
    assert (code, err) == (0, "")
    assert json.loads(out)["statement"] == str(gated.statement_digest)


def test_a_root_file_system_has_no_verdict_to_find(home: Home, tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    code, out, err = stella(home, "verify", f"dir:{tmp_path / 'rootfs'}")
    assert (code, out) == (1, "")
    assert err == (
        f"stella: error: image dir:{tmp_path / 'rootfs'} has no manifest (a root file system or "
        "a docker-archive): a verdict binds to a manifest digest (load it with 'stella images "
        "load', gate it by name, and name it so here)\n"
    )


def test_an_ungated_layout_says_so(home: Home, tmp_path: Path) -> None:
    build_image(tmp_path / "other", [dist_info("requests", "2.19.0", SITE)], tag="1")
    code, out, err = stella(home, "explain", f"oci:{tmp_path / 'other'}:1")
    assert (code, out) == (1, "")
    assert err.startswith(f"stella: error: image oci:{tmp_path / 'other'}:1 (sha256:")
    assert err.endswith(") has no risk verdict attached (run 'stella gate' on it first)\n")
