#!/usr/bin/env python3
"""Writes ``rhel9/var/lib/rpm/rpmdb.sqlite`` beside it: a real rpm database holding empty
packages that carry the names, epochs, versions, releases, SOURCERPM and (nodejs)
MODULARITYLABEL of RHEL 9 packages.

Needs Debian's ``rpm`` package (rpmbuild and rpm). No container engine, no network:

    python3 tests/data/scanner/make_el9_rpmdb.py

Each source package is one spec file with its binaries as subpackages, so rpmbuild writes
the real ``SOURCERPM`` (``openssl-3.0.1-43.el9_0.src.rpm`` for ``openssl-libs``); the
database is written by ``rpm -i --justdb`` as on an installed system.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "rhel9" / "var" / "lib" / "rpm"

# (source name, epoch, version, release, binaries, modularity label)
SOURCES: list[tuple[str, int | None, str, str, tuple[str, ...], str]] = [
    ("bash", None, "5.1.8", "4.el9", ("bash",), ""),
    ("openssl", 1, "3.0.1", "43.el9_0", ("openssl", "openssl-libs"), ""),
    ("curl", None, "7.76.1", "29.el9_4.1", ("curl-minimal", "libcurl-minimal"), ""),
    ("zlib", None, "1.2.11", "40.el9", ("zlib",), ""),
    ("glibc", None, "2.34", "83.el9_3.7", ("glibc", "glibc-common", "glibc-minimal-langpack"), ""),
    ("sqlite", None, "3.34.1", "7.el9_3", ("sqlite-libs",), ""),
    ("libxml2", None, "2.9.13", "3.el9_1", ("libxml2",), ""),
    ("python3.9", None, "3.9.10", "4.el9_0", ("python3", "python3-libs"), ""),
    (
        "nodejs",
        1,
        "18.14.2",
        "2.module+el9.2.0+18303+ba4ab2a2",
        ("nodejs",),
        "nodejs:18:9020020230301063216:rhel9",
    ),
    (
        "mysql",
        None,
        "8.4.0",
        "1.module+el9.5.0+22159+8c1f8e5d",
        ("mysql", "mysql-common"),
        "mysql:8.4:9050020240618084521:rhel9",
    ),
]


def spec(
    source: str, epoch: int | None, version: str, release: str, binaries: tuple[str, ...]
) -> str:
    lines = [
        f"Name: {source}",
        f"Version: {version}",
        f"Release: {release}",
        *([f"Epoch: {epoch}"] if epoch is not None else []),
        "Summary: RHEL 9 package name and version, no content",
        "License: MIT",
        "%description",
        "Fixture.",
    ]
    for binary in binaries:
        if binary == source:
            lines += ["%files"]
        else:
            lines += [
                f"%package -n {binary}",
                f"Summary: {binary}",
                f"%description -n {binary}",
                "Fixture.",
                f"%files -n {binary}",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "top"
        db = Path(tmp) / "db"
        for source, epoch, version, release, binaries, label in SOURCES:
            path = Path(tmp) / f"{source}.spec"
            path.write_text(spec(source, epoch, version, release, binaries))
            defines = [
                f"_topdir {top}",
                "_build_id_links none",
                "__os_install_post %{nil}",
                "_target_cpu x86_64",
            ]
            if label:
                defines.append(f"modularitylabel {label}")
            args = [a for d in defines for a in ("--define", d)]
            subprocess.run(
                ["rpmbuild", "-bb", "--quiet", "--target", "x86_64", *args, str(path)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        db.mkdir()
        subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True)
        rpms = sorted(str(p) for p in top.glob("RPMS/*/*.rpm"))
        subprocess.run(
            [
                "rpm",
                "--dbpath",
                str(db),
                "-i",
                "--justdb",
                "--nodeps",
                "--ignorearch",
                "--ignoreos",
                *rpms,
            ],
            check=True,
        )
        # a checkpoint folds the write-ahead log into the file, which is all that is kept
        subprocess.run(["rpm", "--dbpath", str(db), "-qa"], check=True, stdout=subprocess.DEVNULL)
        shutil.copyfile(db / "rpmdb.sqlite", HERE / "rpmdb.sqlite")


if __name__ == "__main__":
    main()
