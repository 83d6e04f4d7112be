"""The fixed gate inputs whose predicate bytes are kept as goldens (tests/golden/rva/)."""

from __future__ import annotations

from appliance.match.model import Reachability, Severity
from appliance.rva.evaluate import GateInputs
from appliance.vex.model import Origin, VexStatus
from tests.appliance.rva.factories import (
    IMAGE_DIGEST,
    OPENSSL,
    REQUESTS,
    finding,
    inputs,
    statement,
)

IMAGE_PURL = f"pkg:oci/app@{IMAGE_DIGEST.replace(':', '%3A')}?repository_url=registry.example/app"
ZLIB = "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"


def fail() -> GateInputs:
    return inputs(
        finding("CVE-2024-0001", OPENSSL, severity=Severity.CRITICAL, kev=True, epss="0.97120"),
        finding("CVE-2024-0002", REQUESTS, severity=Severity.MEDIUM, epss="0.00587"),
        finding("CVE-2024-0003", ZLIB, severity=Severity.LOW, aliases=("DSA-5000-1",)),
        finding("CVE-2024-0004", OPENSSL, severity=Severity.HIGH, reach=Reachability.REACHABLE),
        statements=(
            statement("CVE-2024-0002", REQUESTS, origin=Origin.VENDOR),
            statement("DSA-5000-1", IMAGE_PURL, status=VexStatus.UNDER_INVESTIGATION),
        ),
    )


def pass_with_exceptions() -> GateInputs:
    return inputs(
        finding("CVE-2024-0001", OPENSSL, severity=Severity.CRITICAL, kev=True),
        finding("CVE-2024-0002", REQUESTS, severity=Severity.MEDIUM),
        statements=(
            statement(
                "CVE-2024-0001",
                IMAGE_PURL,
                subcomponents=(OPENSSL,),
                expires="2027-01-01T00:00:00Z",
            ),
            statement(
                "CVE-2024-0002", REQUESTS, expires="2026-11-01T00:00:00Z", at="2026-10-01T00:00:00Z"
            ),
        ),
    )


def indeterminate() -> GateInputs:
    return inputs(knowledge=False, sbom=None)


CASES = {"fail": fail, "pass-with-exceptions": pass_with_exceptions, "indeterminate": indeterminate}
