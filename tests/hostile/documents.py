"""Hostile documents, built in code: what an operator or auditor could be handed as VEX,
policy bundles, trust roots, RVAs, Sigstore bundles and audit packages.

Every builder writes into a directory it is given and returns the path; nothing large is
committed. The bench (bench/bench_hostile.py) runs the worst of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import struct
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from bundles.keys import PrivateKey
from bundles.trust import TrustRoot
from tests.hostile.harness import Identified, Run, assert_refused

C = TypeVar("C", bound=Identified)
K = TypeVar("K", bound=Identified)

IMAGE_PURL: Final = "pkg:oci/acme-app@sha256%3A" + "8d" * 32

OPENVEX: Final[dict[str, Any]] = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://vex.example.com/acme-app/2025-01",
    "author": "ACME Product Security <psirt@example.com>",
    "timestamp": "2025-01-15T10:00:00Z",
    "version": 1,
    "statements": [
        {
            "vulnerability": {"name": "CVE-2023-44487"},
            "products": [{"@id": IMAGE_PURL}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "The HTTP/2 server is disabled in this product.",
        },
        {
            "vulnerability": {"name": "CVE-2024-3094"},
            "products": [{"@id": IMAGE_PURL}],
            "status": "fixed",
        },
    ],
}

CYCLONEDX_VEX: Final[dict[str, Any]] = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
    "version": 1,
    "metadata": {"timestamp": "2025-01-15T10:00:00Z", "supplier": {"name": "ACME"}},
    "components": [
        {
            "bom-ref": "ssl",
            "type": "library",
            "name": "openssl",
            "purl": "pkg:deb/debian/openssl@3.0.11",
        }
    ],
    "vulnerabilities": [
        {
            "id": "CVE-2023-5678",
            "analysis": {
                "state": "not_affected",
                "justification": "code_not_reachable",
                "detail": "DH is not used",
            },
            "affects": [{"ref": "ssl"}],
        },
        {
            "id": "CVE-2024-0727",
            "analysis": {"state": "exploitable", "response": ["update"]},
            "affects": [{"ref": "ssl"}],
        },
    ],
}


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def changed(doc: dict[str, Any], edit: Callable[[Any], None]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    edit(out)
    return out


def deep_json(levels: int = 200_000) -> bytes:
    """An array nested ``levels`` deep: a recursive parser's RecursionError."""
    return b"[" * levels + b"]" * levels


def deep_in_field(doc: dict[str, Any], field: str, levels: int = 200_000) -> bytes:
    """``doc`` with ``field`` holding a ``levels``-deep array (the rest of it is valid)."""
    marker = '"__deep__"'
    text = json.dumps({**doc, field: "__deep__"})
    return text.replace(marker, "[" * levels + "]" * levels).encode()


def sparse_file(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of ``size`` bytes that costs nothing on disk: ``head`` then a hole."""
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def many_statements(count: int) -> bytes:
    """An OpenVEX document of ``count`` small statements, written without building them."""
    one = json.dumps({"vulnerability": "CVE-2025-1", "products": ["p"], "status": "fixed"}).encode()
    head = {k: v for k, v in OPENVEX.items() if k != "statements"}
    return json.dumps(head).encode()[:-1] + b', "statements": [' + b",".join([one] * count) + b"]}"


# ---------------------------------------------------------------- ZIPs


def zip_of(path: Path, members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0)), data, method)
    return path


def manifest_for(members: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "subject": "sha256:" + "ab" * 32,
            "statement": "sha256:" + "cd" * 32,
            "files": [
                {"path": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                for n, d in sorted(members.items())
            ],
        }
    ).encode()


def zip_bomb(path: Path, name: str, size: int) -> Path:
    """A member that deflates ``size`` zero bytes into a few hundred KiB (streamed, never held)."""
    info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", manifest_for({}))
        with z.open(info, "w", force_zip64=True) as w:
            for _ in range(size // len(chunk)):
                w.write(chunk)
    return path


def zip_declaring(path: Path, name: str, declared: int, data: bytes = b"{}") -> Path:
    """A stored member whose central directory entry declares ``declared`` bytes (below
    4 GiB) while the archive holds only ``data``."""
    members = {"manifest.json": manifest_for({}), name: data}
    zip_of(path, members, method=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if bytes(raw[at + 46 : at + 46 + name_len]) == name.encode():
            struct.pack_into("<I", raw, at + 24, declared)
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))
    return path


def zip_with_flags(path: Path, members: dict[str, bytes], name: str, flags: int) -> Path:
    """``members`` zipped, with ``flags`` or-ed into the general-purpose bits of ``name``'s
    central directory entry (bit 0: encrypted)."""
    zip_of(path, members)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if bytes(raw[at + 46 : at + 46 + name_len]) == name.encode():
            bits = struct.unpack_from("<H", raw, at + 8)[0]
            struct.pack_into("<H", raw, at + 8, bits | flags)
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))
    return path


def zip_end_claiming(path: Path, entries: int, directory: int) -> Path:
    """A ZIP whose end record claims ``entries`` members and a ``directory``-byte central
    directory (zip64, so the claim can be anything)."""
    body = b""
    zip64_end = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries, directory, 0
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(body), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(body + zip64_end + locator + end)
    return path


# ---------------------------------------------------------------- the home cases run against


@dataclass(frozen=True, slots=True)
class Template:
    """An initialised appliance home that trusts one mirror root and holds one vendor VEX
    document, with the keys that made the root (for rotation cases)."""

    home: Path
    root_key: PrivateKey
    bundle_key: PrivateKey
    trust_root: Path  # the trusted root's file (version 1)
    public_key: Path  # the appliance's public key (PEM)


_TEMPLATES: dict[Path, Template] = {}


def template(base: Path) -> Template:
    """The template home under ``base``, made once per ``base`` (three ``stella`` runs)."""
    if base in _TEMPLATES:
        return _TEMPLATES[base]
    from tests.hostile.harness import run

    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    root_key, bundle_key = PrivateKey.generate(), PrivateKey.generate()
    root = TrustRoot.create([root_key], [bundle_key.public_key], now=datetime.now(UTC))
    trust_root = base / "trust-root.json"
    trust_root.write_bytes(root.to_bytes())
    vex = write_json(base / "vendor.openvex.json", OPENVEX)
    public = base / "appliance.pub"
    for argv in (
        ("init",),
        ("trust", "add", trust_root),
        ("vex", "import", vex),
        ("keys", "export-public", "--out", public),
    ):
        result = run("stella", *argv, home=home)
        assert result.code == 0, result.describe()
    made = Template(home, root_key, bundle_key, trust_root, public)
    _TEMPLATES[base] = made
    return made


def copy_home(made: Template, to: Path) -> Path:
    shutil.copytree(made.home, to, symlinks=True)
    return to


def fingerprint(home: Path) -> dict[str, str]:
    """Every file of ``home`` by its SHA-256: a refusal must leave each byte as it was
    (SQLite's shared-memory index is not content and is left out)."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def documents_state(home: Path) -> dict[str, Any]:
    """What a user would look at after handing the appliance a document: the harness's
    state, the VEX statements and the trusted roots."""
    from tests.hostile.harness import run, state

    out = state(home)
    for name, argv in (("vex", ("vex", "list")), ("trust", ("trust", "list"))):
        result = run("stella", "--json", *argv, home=home)
        out[name] = {"exit": result.code, "out": json.loads(result.out) if result.out else None}
    return out


_STATES: dict[Path, dict[str, Any]] = {}


def template_state(made: Template) -> dict[str, Any]:
    """:func:`documents_state` of the template home, taken once (nothing ever changes it)."""
    if made.home not in _STATES:
        _STATES[made.home] = documents_state(made.home)
    return _STATES[made.home]


Outcome = tuple[Run, dict[str, Any], dict[str, str]]  # the run, its message fields, the home after
Outcomes = tuple[dict[str, str], dict[str, Outcome]]  # the home before, each case's outcome by id


def run_cases(
    cases: Sequence[C],
    home: Path,
    base: Path,
    execute: Callable[[C, Path], tuple[Run, dict[str, Any]]],
) -> tuple[dict[str, str], dict[str, Outcome]]:
    """Run every case against ``home`` (one ``stella`` each, as many at once as there are
    cores: a refusal writes nothing, so they cannot disturb one another) and fingerprint the
    home after each. Returns the fingerprint before, and each case's outcome by id: any write
    by any case shows as a changed fingerprint."""
    initial = fingerprint(home)

    def one(case: C) -> tuple[str, Outcome]:
        ident = str(case.id)
        tmp = base / ident
        tmp.mkdir(parents=True)
        result, fields = execute(case, tmp)
        return ident, (result, fields, fingerprint(home))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return initial, dict(pool.map(one, cases))


def case_fixtures(
    label: str,
    cases: Sequence[C],
    execute: Callable[[C, Path, Template, Path], tuple[Run, dict[str, Any]]],
) -> tuple[Any, Any, Any]:
    """A document module's module-scoped fixtures ``made`` (the shared template), ``home``
    (this module's copy of it, under ``label``) and ``outcomes`` (every case run once against
    that copy by :func:`run_cases`). A module binds them to those names::

        made, home, outcomes = case_fixtures("vex", CASES, execute)
    """

    @pytest.fixture(scope="module", name="made")
    def made_fixture(tmp_path_factory: pytest.TempPathFactory) -> Template:
        return template(tmp_path_factory.getbasetemp() / "documents-template")

    @pytest.fixture(scope="module", name="home")
    def home_fixture(made: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return copy_home(made, tmp_path_factory.mktemp(label) / "home")

    @pytest.fixture(scope="module", name="outcomes")
    def outcomes_fixture(
        made: Template, home: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> Outcomes:
        base = tmp_path_factory.mktemp(f"{label}-cases")
        return run_cases(cases, home, base, lambda case, tmp: execute(case, tmp, made, home))

    return made_fixture, home_fixture, outcomes_fixture


def assert_case_refused(outcomes: Outcomes, ident: str, expected: str, *, code: int = 1) -> None:
    """Case ``ident`` was refused with exactly ``expected`` (its ``{...}`` filled from the
    case's fields) and exit ``code`` (see :func:`assert_refused`), and every byte of the home
    is as it was before any case ran."""
    initial, done = outcomes
    result, fields, after = done[ident]
    assert_refused(result, expected.format(**fields), code=code)
    changed_files = sorted(
        f for f in initial.keys() | after.keys() if initial.get(f) != after.get(f)
    )
    assert after == initial, f"the refusal changed the home: {changed_files}"


def case_tests(cases: Sequence[K], expected: dict[str, str]) -> tuple[Any, Any, Any]:
    """The three tests every document module keeps, for a module to bind to its own names:
    each case is refused with its exact line from ``expected`` and its exit (``case.code``,
    else 1) and leaves every byte of the home as it was; every case has its line; and what a
    user sees afterwards is what they saw in the untouched template::

        (
            test_hostile_vex_is_refused,
            test_every_case_has_its_line,
            test_what_a_user_sees_is_unchanged_after_every_refusal,
        ) = case_tests(CASES, EXPECTED)

    (This module's asserts are not rewritten by pytest, so each says what differs.)
    """

    @pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])
    def refused(case: K, outcomes: Outcomes) -> None:
        assert_case_refused(outcomes, case.id, expected[case.id], code=getattr(case, "code", 1))

    def every_case_has_its_line() -> None:
        ids = [c.id for c in cases]
        unmatched = sorted(set(ids) ^ set(expected))
        assert sorted(expected) == sorted(ids), (
            f"a case without a line, or a line without a case: {unmatched}"
        )

    def unchanged(made: Template, home: Path, outcomes: Outcomes) -> None:
        before, after = template_state(made), documents_state(home)
        differ = {
            k: (before.get(k), after.get(k))
            for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)
        }
        assert after == before, f"what a user sees changed (template, now): {differ}"

    return refused, every_case_has_its_line, unchanged
