"""``stella scan`` on hostile images: decompression bombs, hidden package databases, files
larger than their analyzers read, tar entries no honest tool writes.

Every case runs the real command in a child capped at 768 MiB of address space and asserts the
exit code, the exact unknown (path and reason) or the exact one-line error, that the rest of the
image is still scanned, that no temporary file is left, and that peak RSS stays within 512 MiB.
"""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

from bundles.limits import Unit, human
from bundles.oci.mediatypes import OCI_LAYER_GZIP
from bundles.tarstream import EXTENDED_HEADER
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, d, hard, sym
from tests.hostile.harness import RSS_CEILING, Run, leftovers
from tests.hostile.imagekit import (
    Case,
    Layer,
    MiB,
    bomb,
    header,
    image,
    layer,
    raw_layer,
    run_all,
    uncompressed,
)

BASE = [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]
DPKG = "var/lib/dpkg/status"
APK = "lib/apk/db/installed"
HINT = "(if this input is trusted and that large, raise the cap with {env}=N (docs/limits.md))"
LEFT_OUT = "; the layer is left out (raise the cap with {env})"


def scan(where: Path) -> list[str]:
    return ["scan", f"oci:{where / 'img'}", "--format", "json", "--no-cache"]


# Each case: layers (bottom first), environment, and what the scan must report. An expected
# unknown is (path, reason, analyzer); "{layer1}" in a path names the digest of layer 1.
EXPECTED: dict[str, Any] = {}
CASES: list[Case] = []


def case(
    name: str,
    layers: Sequence[Layer],
    unknowns: Sequence[tuple[str, str, str]],
    *,
    packages: int = 3,
    env: dict[str, str] | None = None,
    error: str | None = None,
) -> None:
    def build(where: Path) -> list[str]:
        digests = image(where / "img", layers)
        EXPECTED[name] = {
            "digests": [str(x) for x in digests],
            "unknowns": unknowns,
            "packages": packages,
            "error": error,
        }
        return scan(where)

    CASES.append(Case(name, build, env or {}))


def cap_reason(what: str, cap: str, value: str, found: str | None = None) -> str:
    env = "STELLA_LIMIT_" + cap.replace(".", "_").upper()
    seen = f" (found {found})" if found else ""
    return f"{what} is over the {cap} cap of {value}{seen}" + LEFT_OUT.format(env=env)


def file_reason(
    path: str, what: str, cap: str, value: str, found: str, *, in_archive: bool = False
) -> str:
    """The reason of a file over an analyzer's cap; a member of an archive is named in it."""
    env = "STELLA_LIMIT_" + cap.replace(".", "_").upper()
    prefix = f"{path}: " if in_archive else ""
    return (
        prefix + f"{what} is over the {cap} cap of {value} (found {found}) " + HINT.format(env=env)
    )


# ---------------------------------------------------------------- decompression bombs

RATIO = "the expansion of a compressed layer (uncompressed bytes per compressed byte)"
case(
    "gzip-bomb",
    [layer(BASE), bomb(200, "gzip")],
    [("{layer1}", "RATIO:scan.layer_ratio", "layers")],
)
case(
    "zstd-bomb",
    [layer(BASE), bomb(3072, "zstd")],
    [("{layer1}", "RATIO:scan.layer_ratio", "layers")],
)
case(
    "gzip-bomb-bottom-layer",
    [bomb(200, "gzip"), layer(BASE)],
    [("{layer0}", "RATIO:scan.layer_ratio", "layers")],
)
case(
    "bomb-over-the-layer-total",
    [layer(BASE), bomb(96, "zstd")],
    [
        (
            "{layer1}",
            cap_reason("the uncompressed tar of one image layer", "scan.layer_bytes", "64 MiB"),
            "layers",
        )
    ],
    env={"STELLA_LIMIT_SCAN_LAYER_BYTES": "64M", "STELLA_LIMIT_SCAN_LAYER_RATIO": "1000000"},
)
_PLAIN = uncompressed([F("opt/blob", bytes(3 * MiB))])
case(
    "plain-layer-over-the-layer-total",
    [layer(BASE), _PLAIN],
    [
        (
            "{layer1}",
            cap_reason(
                "the uncompressed tar of one image layer",
                "scan.layer_bytes",
                "2 MiB",
                human(len(_PLAIN.blob), Unit.BYTES),
            ),
            "layers",
        )
    ],
    env={"STELLA_LIMIT_SCAN_LAYER_BYTES": "2M"},
)
_NOISE = random.Random(0).randbytes(2 * MiB)  # 2 MiB that gzip cannot shrink
case(
    "layers-over-the-image-total",
    [
        layer(BASE),
        layer([F("opt/a", _NOISE)]),
        layer([F("opt/b", _NOISE)]),
        layer([F("opt/c", _NOISE)]),
    ],
    [
        ("{layer2}", "IMAGE:scan.image_bytes", "layers"),
        ("{layer3}", "IMAGE:scan.image_bytes", "layers"),
    ],
    env={"STELLA_LIMIT_SCAN_IMAGE_BYTES": "3M"},
)
_INNER = zstandard.ZstdCompressor().compress(bomb(64, "gzip").blob)
case(
    "nested-bomb",  # a zstd layer whose content is a gzip bomb, not a tar
    [layer(BASE), Layer(_INNER, "application/vnd.oci.image.layer.v1.tar+zstd")],
    [],
    error="layer {layer1}: the layer is not a readable tar stream: …",
)
_WIDE = zstandard.ZstdCompressor(
    compression_params=zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
).compressobj()
_WINDOW = _WIDE.compress(uncompressed(BASE).blob) + _WIDE.flush()  # asks for a 2 GiB window
case(
    "zstd-window-bomb",
    [layer(BASE), Layer(_WINDOW, "application/vnd.oci.image.layer.v1.tar+zstd")],
    [],
    error="layer {layer1}: the layer is not a readable tar stream: …",
)


# ---------------------------------------------------------------- hidden package databases

HIDDEN = "symbolic link to {0}, which is not in the image (links resolve inside it)"
for name, entries, path, reason, analyzer in [
    ("dpkg-loop", [sym(DPKG, "../dpkg-old/status"), sym("var/lib/dpkg-old/status", "/" + DPKG)],
     DPKG, "symbolic link loop: var/lib/dpkg/status -> var/lib/dpkg-old/status -> "
     "var/lib/dpkg/status", "dpkg"),
    ("dpkg-self-loop", [sym(DPKG, "status")], DPKG,
     "symbolic link loop: var/lib/dpkg/status -> var/lib/dpkg/status", "dpkg"),
    ("dpkg-chain-of-50",
     [sym(DPKG, "/l0"), *[sym(f"l{i}", f"/l{i + 1}") for i in range(50)], F("l50", STATUS_BASE)],
     DPKG, "a chain of more than 40 symbolic links", "dpkg"),
    ("dpkg-absolute-outside", [sym(DPKG, "/host/var/lib/dpkg/status")], DPKG,
     HIDDEN.format("/host/var/lib/dpkg/status"), "dpkg"),
    ("dpkg-climbs-out", [sym(DPKG, "../../../../../../etc/passwd")], DPKG,
     HIDDEN.format("../../../../../../etc/passwd"), "dpkg"),
    ("dpkg-dangling", [sym(DPKG, "status-old")], DPKG, HIDDEN.format("status-old"), "dpkg"),
    ("dpkg-directory", [d(DPKG), F(f"{DPKG}/x", STATUS_BASE)], DPKG,
     "is a directory, not the package database file", "dpkg"),
    ("dpkg-link-to-a-file", [F("opt/db", STATUS_BASE), sym(DPKG, "/opt/db")], DPKG,
     "symbolic link to /opt/db (opt/db); a package database is read only at its own path, "
     "never through a link", "dpkg"),
    ("dpkg-link-to-a-directory", [d("opt/db"), sym(DPKG, "/opt/db")], DPKG,
     "symbolic link to /opt/db, which is a directory", "dpkg"),
    ("dpkg-behind-a-linked-directory",
     [F("opt/dpkg/status", STATUS_BASE), sym("var/lib/dpkg", "/opt/dpkg")], DPKG,
     "reached through the symbolic link var/lib/dpkg (it is opt/dpkg/status); a package "
     "database is read only at its own path", "dpkg"),
    ("apk-loop", [sym(APK, "installed")], APK,
     "symbolic link loop: lib/apk/db/installed -> lib/apk/db/installed", "apk"),
    ("apk-absolute-outside", [sym(APK, "/etc/apk/world-of-host")], APK,
     HIDDEN.format("/etc/apk/world-of-host"), "apk"),
    ("apk-directory", [d(APK)], APK, "is a directory, not the package database file", "apk"),
    ("rpm-loop", [sym("var/lib/rpm/Packages", "Packages")], "var/lib/rpm/Packages",
     "symbolic link loop: var/lib/rpm/Packages -> var/lib/rpm/Packages", "rpm"),
    ("rpm-sqlite-dangling", [sym("var/lib/rpm/rpmdb.sqlite", "/nowhere")],
     "var/lib/rpm/rpmdb.sqlite", HIDDEN.format("/nowhere"), "rpm"),
    ("os-release-loop", [sym("etc/os-release", "os-release")], "etc/os-release",
     "symbolic link loop: etc/os-release -> etc/os-release", "os-release"),
]:  # fmt: skip
    keep = [e for e in BASE if e.path != path and not name.startswith("dpkg")]
    case(
        name,
        [layer(keep), layer(entries)],
        [(path, reason, analyzer)],
        packages=0 if path == DPKG or "dpkg" in name else 3,
    )

case(  # the usual layout of Debian and others: read at its target, nothing unknown
    "os-release-usual-link",
    [layer([sym("etc/os-release", "../usr/lib/os-release"), F("usr/lib/os-release", OS_RELEASE),
            F(DPKG, STATUS_BASE)])],
    [],
)  # fmt: skip
case(
    "dpkg-device",
    [layer([F("etc/os-release", OS_RELEASE)]), raw_layer(header(DPKG, 0, kind=tarfile.CHRTYPE))],
    [(DPKG, "is a device, socket or pipe, not the package database file", "dpkg")],
    packages=0,
)


# ---------------------------------------------------------------- files over their caps

case(
    "dpkg-status-over-its-cap",
    [layer([F("etc/os-release", OS_RELEASE), F(DPKG, STATUS_BASE + b"#" * (100 << 10))])],
    [
        (
            DPKG,
            file_reason(
                DPKG,
                "a package database read whole (dpkg status and lists, apk installed)",
                "scan.file_bytes",
                "64 KiB",
                f"{len(STATUS_BASE) + (100 << 10):,} bytes",
            ),
            "dpkg",
        )
    ],
    packages=0,
    env={"STELLA_LIMIT_SCAN_FILE_BYTES": "64K"},
)
case(
    "os-release-over-its-default-cap",
    [layer([F("etc/os-release", OS_RELEASE + b"#" * (64 << 10)), F(DPKG, STATUS_BASE)])],
    [
        (
            "etc/os-release",
            file_reason(
                "etc/os-release",
                "an os-release file",
                "scan.os_release_bytes",
                "64 KiB",
                f"{len(OS_RELEASE) + (64 << 10):,} bytes",
            ),
            "os-release",
        )
    ],
)
case(
    "rpmdb-over-its-cap",
    [layer([*BASE, F("var/lib/rpm/Packages", bytes(2 * MiB))])],
    [
        (
            "var/lib/rpm/Packages",
            file_reason(
                "var/lib/rpm/Packages",
                "an rpm database (sqlite, BerkeleyDB or ndb), read whole",
                "scan.rpmdb_bytes",
                "1 MiB",
                "2 MiB",
            ),
            "rpm",
        )
    ],
    env={"STELLA_LIMIT_SCAN_RPMDB_BYTES": "1M"},
)
_PKG = "usr/lib/node_modules/big/package.json"
case(
    "package-json-over-its-default-cap",
    [layer([*BASE, F(_PKG, b'{"name":"big","version":"1.0.0"}' + b" " * (4 * MiB))])],
    [
        (
            _PKG,
            file_reason(
                _PKG, "an npm package.json", "scan.package_json_bytes", "4 MiB", "4,194,336 bytes"
            ),
            "node-packages",
        )
    ],
)
_META = "usr/lib/python3/dist-packages/big-1.0.dist-info/METADATA"
case(
    "python-metadata-over-its-default-cap",
    [layer([*BASE, F(_META, b"Name: big\nVersion: 1.0\n" + b"x" * (8 * MiB))])],
    [
        (
            _META,
            file_reason(
                _META,
                "a Python METADATA, PKG-INFO or RECORD file",
                "scan.python_metadata_bytes",
                "8 MiB",
                f"{23 + 8 * MiB:,} bytes",
            ),
            "python-packages",
        )
    ],
)
case(
    "executable-over-the-go-binary-cap",
    [layer([*BASE, F("usr/bin/huge", b"\x7fELF" + bytes(2 * MiB), mode=0o755)])],
    [
        (
            "usr/bin/huge",
            file_reason(
                "usr/bin/huge",
                "an executable searched for Go build information",
                "scan.go_binary_bytes",
                "1 MiB",
                "2,097,156 bytes",
            ),
            "go-binary",
        )
    ],
    env={"STELLA_LIMIT_SCAN_GO_BINARY_BYTES": "1M"},
)


def _jar(members: Sequence[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


_POM = b"groupId=org.example\nartifactId=app\nversion=1.0\n"
case(
    "jar-with-too-many-entries",
    [layer([*BASE, F("opt/app.jar", _jar([(f"c/{i}.class", b"") for i in range(40)]))])],
    [
        (
            "opt/app.jar",
            file_reason(
                "opt/app.jar",
                "the entries a Java archive's directory lists",
                "scan.jar_entries",
                "32",
                "40",
            ),
            "java",
        )
    ],
    env={"STELLA_LIMIT_SCAN_JAR_ENTRIES": "32"},
)
_NESTED = _jar(
    [("META-INF/maven/x/y/pom.properties", _POM), ("pad", bytes(2 * MiB))], zipfile.ZIP_STORED
)
case(
    "jar-nesting-a-large-jar",
    [
        layer(
            [
                *BASE,
                F("opt/app.jar", _jar([("META-INF/maven/a/b/pom.properties", _POM),
                                       ("lib/inner.jar", _NESTED)], zipfile.ZIP_STORED)),
            ]
        )
    ],
    [
        (
            "opt/app.jar!/lib/inner.jar",
            file_reason(
                "lib/inner.jar",
                "an archive nested in a Java archive, inflated into memory (up to 4 levels deep)",
                "scan.jar_nested_bytes",
                "1 MiB",
                f"{len(_NESTED):,} bytes",
                in_archive=True,
            ),
            "java",
        )
    ],
    packages=4,
    env={"STELLA_LIMIT_SCAN_JAR_NESTED_BYTES": "1M"},
)  # fmt: skip
case(
    "jar-manifest-bomb",
    [layer([*BASE, F("opt/m.jar", _jar([("META-INF/MANIFEST.MF", bytes(3 * MiB))]))])],
    [
        (
            "opt/m.jar!/META-INF/MANIFEST.MF",
            file_reason(
                "META-INF/MANIFEST.MF",
                "a pom.properties or manifest in a Java archive",
                "scan.jar_member_bytes",
                "1 MiB",
                "3 MiB",
                in_archive=True,
            ),
            "java",
        ),
        ("opt/m.jar", "no Maven coordinates (pom.properties or manifest)", "java"),
    ],
)


# ---------------------------------------------------------------- hostile tar entries

case(
    "entry-climbing-out",
    [layer([*BASE, F("../../../../etc/cron.d/evil", b"* * * * * root sh\n")])],
    [("../../../../etc/cron.d/evil", "tar entry leaves the image root", "")],
)
_DIST = "usr/lib/python3/dist-packages/"
case(
    "hard-link-to-outside",
    [
        layer(
            [*BASE, hard("usr/lib/python3/dist-packages/x.dist-info/METADATA", "../../etc/shadow")]
        )
    ],
    [
        (
            "usr/lib/python3/dist-packages/x.dist-info/METADATA",
            "hard link target leaves the image root",
            "",
        )
    ],
)
case(
    "hard-link-to-a-missing-file",
    [layer([*BASE, hard("usr/lib/python3/dist-packages/y.dist-info/METADATA", "etc/nothing")])],
    [
        (
            "usr/lib/python3/dist-packages/y.dist-info/METADATA",
            "hard link to etc/nothing, which is not a file of this layer",
            "",
        )
    ],
)
_LINKED = _DIST + "z.dist-info/METADATA"
case(
    "hard-link-to-a-huge-file",
    [layer([*BASE, F("opt/huge", bytes(2 * MiB)), hard(_LINKED, "opt/huge")])],
    [
        (
            _LINKED,
            file_reason(
                _LINKED,
                "a Python METADATA, PKG-INFO or RECORD file",
                "scan.python_metadata_bytes",
                "1 MiB",
                "2 MiB",
            ),
            "python-packages",
        )
    ],
    env={"STELLA_LIMIT_SCAN_PYTHON_METADATA_BYTES": "1M"},
)
_PAX = tarfile.TarInfo("opt/x")
_PAX.pax_headers = {"comment": "A" * (2 * MiB)}
case(
    "huge-pax-header",
    [layer(BASE), raw_layer(_PAX.tobuf(format=tarfile.PAX_FORMAT) + bytes(1024))],
    [("{layer1}", "PAX:tar.extended_header_bytes", "layers")],
)
_NEG = bytearray(header("opt/neg", 0))
_NEG[124:136] = b"\xff" * 12  # base-256 size: minus one
_NEG[148:156] = b"        "
_NEG[148:155] = f"{sum(_NEG):06o}\0".encode()
case(
    "negative-size-header",
    [layer(BASE), raw_layer(bytes(_NEG) + bytes(1024))],
    [],
    error="layer {layer1}: the layer is not a readable tar stream: …",
)
case(
    "truncated-gzip-layer",
    [layer(BASE), Layer(layer([F("opt/a", _NOISE)]).blob[:-4096], OCI_LAYER_GZIP)],
    [],
    error="layer {layer1}: the layer is not a readable tar stream: …",
)
case(
    "device-and-fifo-entries",
    [layer(BASE), raw_layer(header("dev/sda", 0, kind=tarfile.BLKTYPE)
                            + header("run/fifo", 0, kind=tarfile.FIFOTYPE) + bytes(1024))],
    [],
)  # fmt: skip


# ---------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Run]]:
    root = tmp_path_factory.mktemp("scan")
    return root, run_all(CASES, root)


def _expected_unknown(name: str, path: str, reason: str, analyzer: str) -> tuple[str, str, str]:
    digests = EXPECTED[name]["digests"]
    path = re.sub(r"\{layer(\d)\}", lambda m: digests[int(m.group(1))], path)
    return path, reason, analyzer


_CAPPED: dict[str, tuple[str, str, str, str]] = {
    # kind: (what the cap bounds, its value, the pattern of what was found, its variable)
    "RATIO": (RATIO, "200:1", r" \(found [\d,]+:1\)", "STELLA_LIMIT_SCAN_LAYER_RATIO"),
    "IMAGE": (
        "the uncompressed layers of one image together",
        "3 MiB",
        r" \(found [\d,]+ (bytes|KiB|MiB)\)",
        "STELLA_LIMIT_SCAN_IMAGE_BYTES",
    ),
    "PAX": (
        EXTENDED_HEADER.what,
        "1 MiB",
        r"( \(found [\d,]+ bytes\))?",
        "STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES",
    ),
}


def _matches(reason: str, expected: str) -> bool:
    kind, _, cap = expected.partition(":")
    if kind in _CAPPED and cap:
        what, value, found, env = _CAPPED[kind]
        pattern = (
            re.escape(f"{what} is over the {cap} cap of {value}")
            + found
            + re.escape(LEFT_OUT.format(env=env))
        )
        return re.fullmatch(pattern, reason) is not None
    return reason == expected


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_hostile_image_scans(name: str, ran: tuple[Path, dict[str, Run]]) -> None:
    root, runs = ran
    result = runs[name]
    expected = EXPECTED[name]
    assert "Traceback" not in result.err, result.describe()
    assert result.peak_rss <= RSS_CEILING, result.describe()
    assert leftovers(root / name) == []
    if expected["error"] is not None:
        line = expected["error"].replace("{layer1}", expected["digests"][1])
        assert result.code == 1, result.describe()
        lines = result.error_lines
        assert len(lines) == 1, result.describe()
        assert lines[0].startswith("stella: error: " + line.rstrip("…")), result.describe()
        return
    assert result.code == 0, result.describe()
    doc = json.loads(result.out)
    found = [(u["path"], u["reason"], u["analyzer"]) for u in doc["unknowns"]]
    wanted = [_expected_unknown(name, *u) for u in expected["unknowns"]]
    assert len(found) == len(wanted), found
    for (path, reason, analyzer), (want_path, want_reason, want_analyzer) in zip(
        sorted(found), sorted(wanted), strict=True
    ):
        assert (path, analyzer) == (want_path, want_analyzer), found
        assert _matches(reason, want_reason), (reason, want_reason)
    assert len(doc["packages"]) == expected["packages"], doc["packages"]


# ---------------------------------------------------------------- the policy sees them


@pytest.mark.parametrize(
    ("entries", "path"),
    [
        ([sym(DPKG, "status")], DPKG),
        ([F("etc/os-release", OS_RELEASE), bomb(200, "zstd")], "{layer}"),
    ],
    ids=["hidden-dpkg-status", "bomb-layer"],
)
def test_the_gate_counts_them_as_unknown_inputs(
    tmp_path: Path, entries: list[Any], path: str
) -> None:
    """What a scan could not read reaches the policy input as an unknown, and the verdict
    says so (the default policy's RISK.UNKNOWN.UNDECIDED), never a silent clean pass."""
    from appliance.home import Home
    from appliance.rva.gate import gate
    from tests.appliance.homes import install_knowledge
    from tests.appliance.rva.factories import AT

    home = Home(tmp_path / "home")
    home.init()
    layers = [x if isinstance(x, Layer) else layer([x]) for x in entries]
    digests = image(home.oci, layers, tag="app:1")
    install_knowledge(home)
    result = gate(home, "app:1", at=AT)
    record = "file:" + path.replace("{layer}", str(digests[-1]))
    policy_input = result.verdict.policy_input
    notes = [u for u in policy_input["unknowns"] if u["record"] == record]
    assert len(notes) == 1, policy_input["unknowns"]
    assert "RISK.UNKNOWN.UNDECIDED" in result.verdict.predicate["reasonCodes"]
    assert result.verdict.predicate["evidence"]["unknowns"]["digest"].startswith("sha256:")
