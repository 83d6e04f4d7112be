"""The layer walk and squash: whiteouts, opaque directories, hard links, symlinks that point
out of the root, files replaced in upper layers, compressions, damaged layers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from appliance.scanner.analyzers.table import DEFAULT
from appliance.scanner.filetree import FileTree
from appliance.scanner.image import ImageRef, open_image
from appliance.scanner.layers import EntryKind, LayerError, LayerRecord
from appliance.scanner.model import PackageType
from appliance.scanner.service import IMAGE_REGISTRY
from appliance.scanner.squash import squash
from appliance.scanner.walk import clean_path, walk_blob, walk_tar
from bundles.errors import DigestError
from bundles.tarstream import read_tar
from tests.appliance.scanner.layouts import (
    OS_RELEASE,
    STATUS_BASE,
    STATUS_UPPER,
    F,
    build_image,
    d,
    dist_info,
    hard,
    opaque,
    sym,
    tar_bytes,
    wh,
)

SITE = "usr/lib/python3/dist-packages"


def records(tmp_path: Path, layers: list[list[F]], compression: str = "gzip") -> list[LayerRecord]:
    build_image(tmp_path / "img", layers, compression=compression)
    image = open_image(ImageRef.parse(f"oci:{tmp_path / 'img'}"))
    return [walk_blob(layer.blob, IMAGE_REGISTRY) for layer in image.layers]


def names(tmp_path: Path, layers: list[list[F]]) -> dict[str, str]:
    squashed = squash(records(tmp_path, layers), IMAGE_REGISTRY)
    return {p.name: p.version for p in squashed.analysis.packages}


def test_packages_of_every_layer_are_found(tmp_path: Path) -> None:
    found = names(
        tmp_path,
        [
            [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)],
            dist_info("requests", "2.19.0", SITE),
        ],
    )
    assert found == {
        "base-files": "12.4+deb12u5",
        "libc6": "2.36-9+deb12u7",
        "login": "4.13+dfsg1-1+b1",
        "requests": "2.19.0",
    }


def test_whiteout_removes_a_file_and_everything_below_a_directory(tmp_path: Path) -> None:
    lower = [*dist_info("requests", "2.19.0", SITE), *dist_info("idna", "2.7", SITE)]
    upper = [wh(f"{SITE}/requests-2.19.0.dist-info")]
    assert names(tmp_path, [lower, upper]) == {"idna": "2.7"}


def test_whiteout_of_a_single_file(tmp_path: Path) -> None:
    lower = [F("var/lib/dpkg/status", STATUS_BASE)]
    upper = [wh("var/lib/dpkg/status")]
    assert names(tmp_path, [lower, upper]) == {}


def test_opaque_directory_hides_lower_content_but_keeps_its_own_layer(tmp_path: Path) -> None:
    lower = [*dist_info("requests", "2.19.0", SITE), *dist_info("idna", "2.7", SITE)]
    # the marker comes after the layer's own file in the tar: it still applies first
    upper = [*dist_info("urllib3", "1.24.1", SITE), opaque(SITE)]
    assert names(tmp_path, [lower, upper]) == {"urllib3": "1.24.1"}


def test_file_replaced_in_an_upper_layer(tmp_path: Path) -> None:
    lower = [F("var/lib/dpkg/status", STATUS_BASE)]
    upper = [F("var/lib/dpkg/status", STATUS_BASE.replace(b"2.36-9+deb12u7", b"2.36-9+deb12u9"))]
    assert names(tmp_path, [lower, upper])["libc6"] == "2.36-9+deb12u9"


def test_non_directory_replacing_a_directory_hides_what_was_below(tmp_path: Path) -> None:
    lower = dist_info("requests", "2.19.0", SITE)
    upper = [F(f"{SITE}/requests-2.19.0.dist-info", b"now a file", 0o644)]
    assert names(tmp_path, [lower, upper]) == {}


def test_upper_file_no_longer_wanted_drops_lower_result(tmp_path: Path) -> None:
    """A path an analyzer read below, replaced above by a symlink, is no longer read."""
    lower = [F("var/lib/dpkg/status", STATUS_BASE)]
    upper = [sym("var/lib/dpkg/status", "/nowhere")]
    assert names(tmp_path, [lower, upper]) == {}


def test_hard_link_is_analyzed_with_its_targets_bytes(tmp_path: Path) -> None:
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"
    layer = [
        F("opt/original/METADATA", metadata),  # not a path any analyzer wants
        d(f"{SITE}/six-1.16.0.dist-info"),
        hard(f"{SITE}/six-1.16.0.dist-info/METADATA", "opt/original/METADATA"),
    ]
    (record,) = records(tmp_path, [layer])
    assert record.unknowns == ()
    squashed = squash([record], IMAGE_REGISTRY)
    (package,) = squashed.analysis.packages
    assert (package.name, package.locations) == ("six", (f"{SITE}/six-1.16.0.dist-info/METADATA",))
    entry = squashed.tree.get(f"{SITE}/six-1.16.0.dist-info/METADATA")
    assert entry is not None
    assert entry.entry.kind is EntryKind.HARDLINK


def test_hard_link_to_a_retained_file(tmp_path: Path) -> None:
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"
    layer = [
        F(f"{SITE}/a-1.dist-info/METADATA", metadata),
        hard(f"{SITE}/b-1.dist-info/METADATA", f"{SITE}/a-1.dist-info/METADATA"),
    ]
    squashed = squash(records(tmp_path, [layer]), IMAGE_REGISTRY)
    assert sorted(p.locations[0] for p in squashed.analysis.packages) == [
        f"{SITE}/a-1.dist-info/METADATA",
        f"{SITE}/b-1.dist-info/METADATA",
    ]


def test_hard_link_to_a_missing_target_is_an_unknown(tmp_path: Path) -> None:
    layer = [hard(f"{SITE}/six-1.dist-info/METADATA", "opt/not-here")]
    (record,) = records(tmp_path, [layer])
    assert [u.path for u in record.unknowns] == [f"{SITE}/six-1.dist-info/METADATA"]
    assert "not a file of this layer" in record.unknowns[0].reason


def test_symlinks_pointing_outside_the_root_stay_inside(tmp_path: Path) -> None:
    layer = [
        d("etc"),
        F("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        sym("usr/bin/abs", "/etc/passwd"),
        sym("usr/bin/up", "../../../../../etc/passwd"),
        sym("usr/bin/host", "/../../../etc/../etc/passwd"),
        sym("loop/a", "b"),
        sym("loop/b", "a"),
        sym("bin", "usr/bin"),
    ]
    tree = squash(records(tmp_path, [layer]), IMAGE_REGISTRY).tree
    for link in ("usr/bin/abs", "usr/bin/up", "usr/bin/host", "bin/abs", "bin/up"):
        resolved = tree.resolve(link)
        assert resolved is not None, link
        assert resolved[0] == "etc/passwd", link
    assert tree.resolve("bin/abs") == ("etc/passwd", ("bin", "usr/bin/abs"))
    assert tree.resolve("loop/a") is None
    assert tree.resolve("usr/bin/missing") is None


def test_tar_entries_leaving_the_root_are_refused(tmp_path: Path) -> None:
    record = walk_tar(
        io.BytesIO(tar_bytes([F("../escape", b"x"), F("ok", b"y"), F("a/../../b", b"z")])),
        IMAGE_REGISTRY,
    )
    assert [e.path for e in record.entries] == ["ok"]
    assert sorted(u.path for u in record.unknowns) == ["../escape", "a/../../b"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./usr/bin/x", "usr/bin/x"),
        ("/etc/os-release", "etc/os-release"),
        ("usr//lib/./x/", "usr/lib/x"),
        ("./", None),
        ("../x", None),
        ("a/../../x", None),
    ],
)
def test_clean_path(name: str, expected: str | None) -> None:
    assert clean_path(name) == expected


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_every_layer_compression(tmp_path: Path, compression: str) -> None:
    recs = records(tmp_path, [[F("var/lib/dpkg/status", STATUS_UPPER)]], compression)
    packages = squash(recs, IMAGE_REGISTRY).analysis.packages
    assert {p.name for p in packages} >= {"python3-minimal", "libc6"}
    assert {p.type for p in packages} == {PackageType.DEB}


def test_damaged_layer_is_refused_by_digest(tmp_path: Path) -> None:
    layout = build_image(tmp_path / "img", [[F("etc/os-release", OS_RELEASE)]], compression="none")
    image = open_image(ImageRef.parse(f"oci:{tmp_path / 'img'}"))
    blob = layout.blob_path(image.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0x20  # inside the file's content
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestError, match="layer content is sha256:"):
        walk_blob(image.layers[0].blob, IMAGE_REGISTRY)


def test_truncated_gzip_layer_is_a_layer_error(tmp_path: Path) -> None:
    stream = io.BytesIO(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    from appliance.scanner.walk import open_tar_stream

    with pytest.raises(LayerError, match="not a readable tar stream"):
        walk_tar(open_tar_stream(stream), IMAGE_REGISTRY)


def test_record_round_trips_through_a_dict(tmp_path: Path) -> None:
    (record,) = records(
        tmp_path,
        [[F("var/lib/dpkg/status", STATUS_BASE), sym("bin", "usr/bin"), wh("gone"), opaque("o")]],
    )
    assert LayerRecord.from_dict(record.to_dict()) == record


def test_scripts_and_python_imports_are_recorded(tmp_path: Path) -> None:
    layer = [
        F("usr/local/bin/start", b"#!/bin/sh\nexec python3 /app/main.py\n", 0o755),
        F("usr/local/bin/big", b"\x7fELF" + b"\0" * 100, 0o755),
        F("app/main.py", b"import requests\nfrom yaml import safe_load\n"),
        F("usr/lib/python3.11/os.py", b"import sys\n"),  # the standard library is not indexed
    ]
    (record,) = records(tmp_path, [layer])
    assert set(record.scripts) == {"usr/local/bin/start"}
    assert record.imports == {"app/main.py": ("requests", "yaml", "yaml.safe_load")}


def test_tree_listdir_and_implied_directories() -> None:
    tree = FileTree()
    tree.apply(
        0, LayerRecord(entries=walk_tar(io.BytesIO(tar_bytes([F("a/b/c", b"x")])), DEFAULT).entries)
    )
    assert tree.is_dir("a")
    assert tree.is_dir("a/b")
    assert tree.is_file("a/b/c")
    assert set(tree.listdir("a")) == {"b"}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_reader_agrees_with_tarfile(fmt: int) -> None:
    long_dir = "usr/lib/" + "d" * 90  # with the name below, over 100 bytes: prefix or long name
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, kind, data, link in [
            (f"{long_dir}/METADATA", tarfile.REGTYPE, b"x" * 1000, ""),
            ("etc", tarfile.DIRTYPE, b"", ""),
            ("bin", tarfile.SYMTYPE, b"", "usr/bin"),
            ("usr/bin/perl", tarfile.REGTYPE, b"ELF", ""),
            ("usr/bin/perl5", tarfile.LNKTYPE, b"", "usr/bin/perl"),
            ("empty", tarfile.REGTYPE, b"", ""),
            ("fifo", tarfile.FIFOTYPE, b"", ""),
            *(  # ustar cannot hold a link target over 100 bytes
                [("long-link", tarfile.SYMTYPE, b"", f"/{long_dir}/METADATA")]
                if fmt != tarfile.USTAR_FORMAT
                else []
            ),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size, info.mode = kind, link, len(data), 0o751
            archive.addfile(info, io.BytesIO(data) if data else None)
    raw = buffer.getvalue()
    ours = []
    for member, read in read_tar(io.BytesIO(raw)):
        content = read().read() if member.isreg() else b""
        ours.append((member.name, member.st_mode, member.size, member.linkname, content))
    theirs = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        for info in archive:
            handle = archive.extractfile(info) if info.isreg() else None
            content = handle.read() if handle else b""
            file_type = {
                tarfile.DIRTYPE: 0o040000,
                tarfile.SYMTYPE: 0o120000,
                tarfile.FIFOTYPE: 0o010000,
            }
            mode = file_type.get(info.type, 0o100000) | info.mode
            theirs.append((info.name, mode, info.size, info.linkname, content))
    assert ours == theirs


def test_tar_reader_refuses_a_bad_checksum() -> None:
    raw = bytearray(tar_bytes([F("a", b"1")]))
    raw[0] = ord("b")  # the name changes, the stored checksum does not
    with pytest.raises(LayerError, match="checksum mismatch"):
        walk_tar(io.BytesIO(bytes(raw)), IMAGE_REGISTRY)


def test_tar_reader_refuses_truncated_content() -> None:
    raw = tar_bytes([F("var/lib/dpkg/status", STATUS_BASE)])
    with pytest.raises(LayerError, match="unexpected end of data"):
        walk_tar(io.BytesIO(raw[:700]), IMAGE_REGISTRY)


def test_large_files_are_spooled_not_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.scanner import walk

    monkeypatch.setattr(walk, "SPOOL_LIMIT", 16)  # every file here is "large"
    found = names(
        tmp_path,
        [[F("var/lib/dpkg/status", STATUS_BASE), *dist_info("six", "1.16.0", SITE)]],
    )
    assert found == {
        "base-files": "12.4+deb12u5",
        "libc6": "2.36-9+deb12u7",
        "login": "4.13+dfsg1-1+b1",
        "six": "1.16.0",
    }


def test_hard_link_to_an_executable_reuses_the_binary_analyzers_result() -> None:
    """Binary analyzers read content only: the link needs neither kept bytes nor a second
    read of the layer (walk_tar has no way to reread here, and reports nothing missing)."""
    elf = b"\x7fELF" + b"\0" * (2 << 20)  # over the size kept in memory for hard links
    raw = tar_bytes(
        [F("usr/bin/perl", elf, 0o755), hard("usr/bin/perl5.36", "usr/bin/perl", 0o755)]
    )
    record = walk_tar(io.BytesIO(raw), IMAGE_REGISTRY, reopen=None)
    assert record.unknowns == ()
    assert [e.kind for e in record.entries] == [EntryKind.FILE, EntryKind.HARDLINK]


def test_hard_link_needing_bytes_not_kept_reads_the_layer_again() -> None:
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n" + b"#" * (2 << 20)
    raw = tar_bytes([F("opt/m", metadata), hard(f"{SITE}/six-1.dist-info/METADATA", "opt/m")])
    without = walk_tar(io.BytesIO(raw), IMAGE_REGISTRY, reopen=None)
    assert "its bytes were not kept" in without.unknowns[0].reason
    again = walk_tar(io.BytesIO(raw), IMAGE_REGISTRY, reopen=lambda: io.BytesIO(raw))
    assert again.unknowns == ()
    assert [p.name for r in again.results.values() for x in r.values() for p in x.packages] == [
        "six"
    ]
