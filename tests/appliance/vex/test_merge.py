"""The VEX merge: which statement wins for each finding, and what is reported."""

from __future__ import annotations

from appliance.match.model import Finding
from appliance.vex.merge import MergedFinding, MergeResult, merge
from appliance.vex.model import Origin, VexStatement, VexStatus
from appliance.vex.products import ImageIdentity
from tests.appliance.rva.factories import (
    AT,
    IMAGE_DIGEST,
    OPENSSL,
    REQUESTS,
    finding,
    statement,
)

IMAGE = ImageIdentity.of(IMAGE_DIGEST, names=("registry.example/app:1",))
IMAGE_PURL = f"pkg:oci/app@{IMAGE_DIGEST.replace(':', '%3A')}"


def one(*statements: VexStatement, f: Finding | None = None) -> tuple[MergedFinding, MergeResult]:
    result = merge([f or finding()], statements, IMAGE, AT)
    return result.findings[0], result


def test_no_statement_means_affected() -> None:
    m, result = one()
    assert m.status is VexStatus.AFFECTED
    assert m.vex is None
    assert result.used == ()


def test_whole_image_statement_applies_to_every_component() -> None:
    m, _ = one(statement(product=IMAGE_PURL))
    assert m.status is VexStatus.NOT_AFFECTED
    assert m.waived
    assert not m.exception


def test_subcomponent_must_name_the_component() -> None:
    m, _ = one(statement(product=IMAGE_PURL, subcomponents=(REQUESTS,)))
    assert m.vex is None
    m, _ = one(statement(product=IMAGE_PURL, subcomponents=(REQUESTS, "pkg:deb/debian/openssl")))
    assert m.status is VexStatus.NOT_AFFECTED


def test_component_product_applies_in_any_image() -> None:
    m, _ = one(statement(product="pkg:deb/debian/openssl@3.0.11-1~deb12u2"))
    assert m.status is VexStatus.NOT_AFFECTED


def test_statement_about_another_image_does_not_apply() -> None:
    m, _ = one(statement(product="pkg:oci/app@sha256%3A" + "0" * 64))
    assert m.vex is None


def test_aliases_on_either_side() -> None:
    m, _ = one(statement("GHSA-aaaa-bbbb-cccc"), f=finding(aliases=("GHSA-AAAA-BBBB-CCCC",)))
    assert m.status is VexStatus.NOT_AFFECTED
    m, _ = one(statement("DSA-1", aliases=("cve-2024-0001",)))
    assert m.status is VexStatus.NOT_AFFECTED


def test_later_timestamp_wins_within_one_origin() -> None:
    older = statement(at="2026-10-01T00:00:00Z", status=VexStatus.NOT_AFFECTED)
    newer = statement(at="2026-11-01T00:00:00Z", status=VexStatus.AFFECTED)
    m, _ = one(older, newer)
    assert m.status is VexStatus.AFFECTED
    assert m.superseded == (older.key,)
    m, _ = one(newer, older)  # input order does not matter
    assert m.status is VexStatus.AFFECTED


def test_operator_statement_beats_a_later_vendor_statement() -> None:
    operator = statement(at="2026-10-01T00:00:00Z", origin=Origin.OPERATOR)
    vendor = statement(at="2026-11-01T00:00:00Z", status=VexStatus.AFFECTED, origin=Origin.VENDOR)
    m, _ = one(vendor, operator)
    assert m.vex == operator


def test_more_specific_product_breaks_a_timestamp_tie() -> None:
    whole = statement(product=IMAGE_PURL, status=VexStatus.AFFECTED, key="urn:a#0")
    sub = statement(product=IMAGE_PURL, subcomponents=(OPENSSL,), key="urn:b#0")
    m, _ = one(whole, sub)
    assert m.vex == sub


def test_future_statements_are_not_yet_known() -> None:
    m, _ = one(statement(at="2026-12-01T00:00:00Z"))
    assert m.vex is None


def test_exception_applies_until_it_expires_and_never_renews() -> None:
    exception = statement(expires="2026-12-01T00:00:00Z")
    m, result = one(exception)
    assert m.exception
    assert result.used == (exception,)
    later = merge([finding()], [exception], IMAGE, AT.replace(month=12, day=2))
    assert later.findings[0].vex is None
    assert later.findings[0].expired == (exception.key,)
    assert later.expired == (exception,)


def test_revocation_supersedes_without_deleting() -> None:
    original = statement(at="2026-10-01T00:00:00Z", key="urn:x#0")
    revocation = statement(
        at="2026-11-01T00:00:00Z",
        status=VexStatus.UNDER_INVESTIGATION,
        key="urn:y#0",
        revokes="urn:x#0",
    )
    m, result = one(original, revocation)
    assert m.status is VexStatus.UNDER_INVESTIGATION
    assert not m.waived
    assert m.superseded == ()  # the revoked statement is out of the running entirely
    assert result.used == (revocation,)
    before = merge([finding()], [original, revocation], IMAGE, AT.replace(month=10, day=15))
    assert before.findings[0].vex == original


def test_merge_is_linear_enough_for_thousands() -> None:
    findings = [finding(f"CVE-2024-{i:05d}") for i in range(3000)]
    statements = [statement(f"CVE-2024-{i:05d}") for i in range(0, 3000, 2)]
    result = merge(findings, statements, IMAGE, AT)
    assert sum(m.waived for m in result.findings) == 1500
