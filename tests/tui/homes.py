"""A real appliance home with one gated image, built through the appliance's own services:
``stella init``, an image in the local store, a knowledge snapshot (OSV + KEV) and a gate.
The TUI's end-to-end tests drive it through :class:`appliance.console.backend.HomeConsole`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from appliance.home import Home
from appliance.imagestore.catalog import list_images
from appliance.rva.gate import gate
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog
from appliance.vex import service as vex_service
from appliance.vex.model import Justification, VexStatus
from bundles.digest import Digest
from tests.appliance.homes import CVE, KEV, SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info

GATED_AT = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)
EXCEPTED_AT = datetime(2026, 11, 23, 6, 30, 0, tzinfo=UTC)
PURL = "pkg:pypi/requests@2.19.0"
IMAGE = "app:1"

__all__ = [
    "CVE",
    "EXCEPTED_AT",
    "GATED_AT",
    "IMAGE",
    "NOW",
    "PURL",
    "add_audit_records",
    "add_snapshot",
    "excepted_home",
    "gated_home",
]


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


def add_audit_records(home: Home, n: int, *, at: datetime = NOW) -> None:
    """Append ``n`` scan records to the home's audit log, as months of rescans leave."""
    with open_state(home) as db:
        log = AuditLog(db, key=home.signing_key())
        for i in range(n):
            log.append(
                AuditAction.SCAN,
                f"sha256:{i:064x}",
                actor="stella (rescan)",
                time=at,
                inputs={"n": i},
                versions={},
                result={"findings": i},
            )


def excepted_home(root: Path) -> tuple[Home, str]:
    """The gated home after an operator's exception (not_affected until 2026-12-31) for its
    finding, signed and re-gated PASS_WITH_EXCEPTIONS at :data:`EXCEPTED_AT`; and the
    exception's statement key."""
    home = gated_home(root)
    (image,) = list_images(home)
    recorded = vex_service.add(
        home,
        vulnerability=CVE,
        image=vex_service.ImageTarget(image.digest, IMAGE),
        components=(PURL,),
        status=VexStatus.NOT_AFFECTED,
        justification=Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
        impact="the redirect path is never used",
        action="",
        expires=datetime(2026, 12, 31, tzinfo=UTC),
        at=EXCEPTED_AT,
    )
    result = gate(home, IMAGE, at=EXCEPTED_AT, now=lambda: EXCEPTED_AT)
    assert result.kind.value == "PASS_WITH_EXCEPTIONS"
    return home, recorded.statements[0].key
