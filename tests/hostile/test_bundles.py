"""Hostile bundles against ``stella import`` and ``stella-mirror verify``.

Every case is refused with its one exact line, exit 1, no traceback and a peak RSS within the
ceiling; the appliance's snapshots, images and files are as they were, the bundle's reason file
is in ``quarantine/`` and the refusal is an ``import.refused`` record of an intact audit log.
The cases (tests/hostile/cases_bundles.py) run in parallel children, each on its own copy of
one initialised home that trusts the test key and already holds a snapshot.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bundles.bounded import printable
from bundles.bundle import hashed_file
from bundles.digest import Digest
from bundles.errors import BundleError
from tests.hostile.bundleplay import (
    Case,
    Outcome,
    World,
    check_import,
    check_verify,
    refused_records,
    world_fixtures,
    worst,
)
from tests.hostile.cases_bundles import CASES
from tests.hostile.harness import RSS_CEILING, run, state

world, outcomes = world_fixtures("hostile-bundles", CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_import_refuses_and_changes_nothing(
    case: Case, world: World, outcomes: dict[str, Outcome]
) -> None:
    check_import(case, world, outcomes[case.id])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mirror_verify_refuses_or_passes_within_the_ceiling(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    check_verify(case, outcomes[case.id])


def test_worst_peak_is_reported(
    outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    """The worst case's peak RSS (for the closing note; the ceiling is asserted per case)."""
    if not outcomes:
        pytest.skip("no case selected")
    peak = worst(outcomes)
    assert peak.peak_rss <= RSS_CEILING
    with capsys.disabled():
        print(
            f"\nhostile bundles: {len(outcomes)} cases, worst peak {peak.peak_rss >> 20} MiB "
            f"({' '.join(peak.argv[3:5])})"
        )


def test_inbox_quarantines_a_truncated_bundle_named_in_no_encoding(world: World) -> None:
    """The inbox's unattended pass: a truncated bundle whose file name is not UTF-8 is refused
    with its reason, quarantined, recorded, and reported in JSON with the name escaped."""
    home = world.root / "inbox-home"
    shutil.copytree(world.template, home, symlinks=True)
    whole = world.kit.good(world.root / "inbox-whole.stella.tar.zst").read_bytes()
    dropped = home / "inbox" / os.fsdecode(b"caf\xe9-\xff.stella.tar.zst")
    dropped.write_bytes(whole[: len(whole) // 2])
    result = run("stella", "--json", "inbox", "process", "--settle", "0", home=home)
    assert "Traceback" not in result.err, result.describe()
    assert result.code == 1, result.describe()
    assert result.peak_rss <= RSS_CEILING
    report = json.loads(result.out)
    cause = (
        "caf\\xe9-\\xff.stella.tar.zst: the archive is empty, or truncated before its first "
        "member (copy the bundle again)"
    )
    (refused,) = report["refused"]
    assert (refused["bundle"], refused["reason"]) == ("caf\\xe9-\\xff.stella.tar.zst", cause)
    assert not dropped.exists()
    (reason_path,) = (home / "quarantine").glob("*.reason")
    assert refused["quarantine"] == printable(str(reason_path))
    assert json.loads(reason_path.read_bytes())["reason"] == cause
    records = refused_records(home)
    assert [r["result"]["reason"] for r in records] == [cause]
    after = state(home)
    assert after["snapshots"] == world.before["snapshots"]
    assert after["audit"]["out"]["ok"] is True
    assert after["leftovers"] == []


def test_mirror_verify_reports_a_good_bundle_named_in_no_encoding(world: World) -> None:
    """A good bundle whose file name is not UTF-8 verifies, and the JSON report names it
    escaped, with the digest and size of its bytes."""
    d = world.root / "odd-name"
    d.mkdir()
    bundle = world.kit.good(d / os.fsdecode(b"caf\xe9.stella.tar.zst"))
    result = run(
        "stella-mirror",
        "--json",
        "verify",
        bundle,
        "--trust-root",
        world.kit.trust_root,
        home=d / "mirror",
    )
    assert result.code == 0, result.describe()
    report = json.loads(result.out)
    assert report["bundle"] == str(d) + "/caf\\xe9.stella.tar.zst"
    digest, size = Digest.of_file(bundle)
    assert (report["digest"], report["size"]) == (str(digest), size)


def test_a_bundle_that_grows_while_it_is_hashed_is_refused(world: World) -> None:
    """A bundle is hashed in the pass that reads it (import, mirror verify): bytes appended
    meanwhile are not silently left out of the digest reported for it."""
    path = world.kit.good(world.root / "growing.stella.tar.zst")
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        stream = hashed_file(fh, size, "growing.stella.tar.zst", hint="read it again")
        with open(path, "ab") as out:
            out.write(b"\0" * 512)
        with pytest.raises(BundleError) as caught:
            stream.skip()
    assert caught.value.diagnostics() == (
        f"growing.stella.tar.zst: the bundle grew past its {size:,} bytes while it was read "
        "(read it again)"
    )
