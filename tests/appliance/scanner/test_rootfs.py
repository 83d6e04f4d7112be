from __future__ import annotations

import shutil
from pathlib import Path

from appliance.scanner.analyzers.table import DEFAULT, IMAGE_KINDS
from appliance.scanner.purl import package_purl
from appliance.scanner.rootfs import iter_files, scan_rootfs
from tests.appliance.scanner.helpers import DATA


def test_scan_debian_rootfs() -> None:
    result = scan_rootfs(DATA / "debian")
    assert result.os is not None
    assert result.os.distro == "debian-12"
    assert result.unknowns == ()
    purls = [package_purl(p, result.os) for p in result.packages]
    assert "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&distro=debian-12&epoch=1" in purls
    assert len(purls) == 7


def test_scan_goes_on_past_broken_files(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    shutil.copytree(DATA / "alpine", root)
    shutil.copytree(DATA / "python", root, dirs_exist_ok=True)
    broken_metadata = root / "usr/lib/python3/dist-packages/broken-1.0.dist-info/METADATA"
    broken_metadata.parent.mkdir(parents=True)
    broken_metadata.write_bytes(b"Summary: no name\n")
    lock = root / "srv/package-lock.json"
    lock.parent.mkdir(parents=True)
    lock.write_text("{ truncated")
    (root / "usr/bin").mkdir(parents=True)
    script = root / "usr/bin/tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (root / "etc/os-release.link").symlink_to("os-release")

    result = scan_rootfs(root)
    assert result.os is not None
    assert result.os.id == "alpine"
    assert len([p for p in result.packages if p.type == "apk"]) == 8
    assert len([p for p in result.packages if p.type == "pypi"]) == 5
    assert sorted((u.path, u.analyzer) for u in result.unknowns) == [
        ("srv/package-lock.json", "npm-lockfile"),
        ("usr/lib/python3/dist-packages/broken-1.0.dist-info/METADATA", "python-packages"),
    ]
    assert "etc/os-release.link" not in {p for p, _, _ in iter_files(root)}

    images_only = scan_rootfs(root, DEFAULT.select(IMAGE_KINDS))
    assert [u.analyzer for u in images_only.unknowns] == ["python-packages"]


def test_equal_trees_give_equal_results(tmp_path: Path) -> None:
    shutil.copytree(DATA / "npm", tmp_path / "copy")
    assert scan_rootfs(tmp_path / "copy") == scan_rootfs(DATA / "npm")
