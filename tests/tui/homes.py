"""A real appliance home with one gated image, built through the appliance's own services:
``stella init``, an image in the local store, a knowledge snapshot (OSV + KEV) and a gate.
The TUI's end-to-end tests drive it through :class:`appliance.service.ApplianceService`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from appliance.home import Home
from appliance.rva.gate import gate
from bundles.digest import Digest
from tests.appliance.homes import CVE, KEV, SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info

GATED_AT = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)
IMAGE = "app:1"

__all__ = ["CVE", "GATED_AT", "IMAGE", "NOW", "add_snapshot", "gated_home"]


def add_snapshot(home: Home, *, created: str = "2026-11-20T00:00:00Z") -> Digest:
    """Load and activate a snapshot holding one OSV record and its KEV entry."""
    return install_knowledge(home, kev=[KEV], created=created)


def gated_home(root: Path) -> Home:
    """A home whose image ``app:1`` (requests 2.19.0) was gated FAIL: its finding is in KEV."""
    home = Home(root)
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag=IMAGE)
    add_snapshot(home)
    result = gate(home, IMAGE, at=GATED_AT, now=lambda: GATED_AT)
    assert result.kind.value == "FAIL"
    return home
