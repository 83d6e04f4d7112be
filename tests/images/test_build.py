"""The fixture-image builder: its deterministic layer writer, whiteouts, recipes and lock
diffs on small temporary trees (no network), and one slow test over the cached minbase image
that ``make images`` builds."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from bundles.digest import Digest
from images import layers
from images.build import (
    DEFAULT_CACHE,
    DEFAULT_OUT,
    MAKE_TARGET,
    FixtureMissingError,
    build_image,
    diff_locks,
    dpkg_packages,
    main,
    require_image,
)
from images.layers import Entry, Kind, LayerError
from images.recipe import RECIPES_DIR, RecipeError, load_recipe, recipe_key
from tests.conftest import require_tools

EPOCH = 1_700_000_000
Member = tuple[str, str, bytes | str]  # (name, kind, bytes or link target)


# ----------------------------------------------------------------- helpers


def make_tar(path: Path, members: list[Member], *, mtime: int) -> Path:
    """Write a tar of (name, kind, data-or-link) in the given order, owners 0:0."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


def layer_members(blob: layers.LayerBlob) -> list[tarfile.TarInfo]:
    with gzip.open(blob.path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        return [m for m in tar]


def same_tree(a: layers.Tree, b: layers.Tree) -> bool:
    """Equal as file systems, wherever each tree's bytes are stored."""
    return a.keys() == b.keys() and all(a[p].same_as(b[p]) for p in a)


def layer_bytes(blob: layers.LayerBlob) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(blob.path, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile():
                fh = tar.extractfile(m)
                assert fh is not None
                out[m.name] = fh.read()
    return out


BASE: list[Member] = [
    ("./", "dir", b""),
    ("./etc", "dir", b""),
    ("./etc/os-release", "file", b"ID=debian\n"),
    ("./etc/hostname", "file", b"fixture\n"),
    ("./usr", "dir", b""),
    ("./usr/bin", "dir", b""),
    ("./usr/bin/perl", "file", b"#!perl\n"),
    ("./usr/bin/perl5.36.0", "hardlink", "./usr/bin/perl"),
    ("./usr/share", "dir", b""),
    ("./usr/share/doc", "dir", b""),
    ("./usr/share/doc/a", "dir", b""),
    ("./usr/share/doc/a/copyright", "file", b"a\n"),
    ("./dev", "dir", b""),
    ("./dev/null", "char", b""),
]


# ----------------------------------------------------------------- reading trees


def test_read_tar_normalizes_names_hashes_files_and_excludes_contents(tmp_path: Path) -> None:
    tree = layers.read_tar(make_tar(tmp_path / "b.tar", BASE, mtime=EPOCH), exclude=["dev"])
    assert "" not in tree
    assert "dev/null" not in tree
    assert tree["dev"].kind is Kind.DIR
    release = tree["etc/os-release"]
    assert release.content is not None
    assert release.content.sha256 == hashlib.sha256(b"ID=debian\n").hexdigest()
    assert tree["usr/bin/perl5.36.0"] == Entry(
        "usr/bin/perl5.36.0", Kind.HARDLINK, mode=0o644, mtime=EPOCH, link="usr/bin/perl"
    )


def test_read_tar_refuses_paths_that_climb_out(tmp_path: Path) -> None:
    bad = make_tar(tmp_path / "bad.tar", [("../etc/passwd", "file", b"x")], mtime=EPOCH)
    with pytest.raises(LayerError, match=r"'\.\./etc/passwd' climbs out of the root"):
        layers.read_tar(bad)


def test_read_dir_owns_everything_by_root_with_fixed_times_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    (root / "usr/local/bin").mkdir(parents=True)
    script = root / "usr/local/bin/tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    (root / "usr/local/data").write_text("x")
    (root / "usr/local/link").symlink_to("data")
    tree = layers.read_dir(root, mtime=EPOCH)
    assert tree["usr/local/bin/tool"].mode == 0o755
    assert tree["usr/local/data"].mode == 0o644
    assert tree["usr/local/link"] == Entry(
        "usr/local/link", Kind.SYMLINK, mode=0o777, mtime=EPOCH, link="data"
    )
    assert {(e.uid, e.gid, e.mtime) for e in tree.values()} == {(0, 0, EPOCH)}


# ----------------------------------------------------------------- differences


def base_tree(tmp_path: Path) -> dict[str, Entry]:
    return layers.read_tar(make_tar(tmp_path / "base.tar", BASE, mtime=EPOCH), exclude=["dev"])


def test_diff_stores_changes_with_their_parents_and_whiteouts_only_the_topmost(
    tmp_path: Path,
) -> None:
    lower = base_tree(tmp_path)
    upper_members = [m for m in BASE if not m[0].startswith("./usr/share")]
    upper_members = [m for m in upper_members if m[0] != "./etc/hostname"]
    upper_members += [("./usr/bin/python3", "file", b"#!py\n")]
    upper_members = [
        (n, k, b"ID=debian\nVERSION_ID=12\n" if n == "./etc/os-release" else d)
        for n, k, d in upper_members
    ]
    upper = layers.read_tar(
        make_tar(tmp_path / "upper.tar", upper_members, mtime=EPOCH), exclude=["dev"]
    )
    changes = layers.diff_trees(lower, upper)
    assert [(e.path, e.kind) for e in changes] == [
        ("etc", Kind.DIR),
        ("etc/.wh.hostname", Kind.FILE),
        ("etc/os-release", Kind.FILE),
        ("usr", Kind.DIR),
        ("usr/.wh.share", Kind.FILE),
        ("usr/bin", Kind.DIR),
        ("usr/bin/python3", Kind.FILE),
    ]
    assert same_tree(layers.overlay(lower, changes), upper)


def test_diff_of_equal_trees_is_empty_even_when_bytes_live_elsewhere(tmp_path: Path) -> None:
    first = base_tree(tmp_path)
    again = layers.read_tar(make_tar(tmp_path / "again.tar", BASE, mtime=EPOCH), exclude=["dev"])
    assert layers.diff_trees(first, again) == []


def test_diff_restores_a_hard_link_whose_target_changed(tmp_path: Path) -> None:
    lower = base_tree(tmp_path)
    members = [(n, k, b"#!perl2\n" if n == "./usr/bin/perl" else d) for n, k, d in BASE]
    upper = layers.read_tar(make_tar(tmp_path / "u.tar", members, mtime=EPOCH), exclude=["dev"])
    paths = [e.path for e in layers.diff_trees(lower, upper)]
    assert paths == ["usr", "usr/bin", "usr/bin/perl", "usr/bin/perl5.36.0"]


def test_diff_replacing_a_directory_by_a_file_needs_no_whiteouts_below_it(tmp_path: Path) -> None:
    lower = base_tree(tmp_path)
    members = [m for m in BASE if not m[0].startswith("./usr/share/doc")]
    members.append(("./usr/share/doc", "symlink", "/elsewhere"))
    upper = layers.read_tar(make_tar(tmp_path / "u.tar", members, mtime=EPOCH), exclude=["dev"])
    changes = layers.diff_trees(lower, upper)
    assert [e.path for e in changes] == ["usr", "usr/share", "usr/share/doc"]
    assert same_tree(layers.overlay(lower, changes), upper)


def test_with_parents_refuses_an_entry_without_its_directory() -> None:
    orphan = Entry("opt/app/x", Kind.FILE)
    with pytest.raises(LayerError, match=r"no directory 'opt/app' above it"):
        layers.with_parents([orphan], {"opt": Entry("opt", Kind.DIR, 0o755)})


# ----------------------------------------------------------------- the layer writer


def test_layer_bytes_depend_only_on_the_tree(tmp_path: Path) -> None:
    """Same tree, different member order in the source tar, later mtimes: same blob."""
    late = EPOCH + 86_400
    a = layers.read_tar(make_tar(tmp_path / "a.tar", BASE, mtime=EPOCH), exclude=["dev"])
    b = layers.read_tar(make_tar(tmp_path / "b.tar", BASE[::-1], mtime=late), exclude=["dev"])
    blob_a = layers.write_layer(a.values(), tmp_path / "a.tar.gz", epoch=EPOCH)
    blob_b = layers.write_layer(reversed(list(b.values())), tmp_path / "b.tar.gz", epoch=EPOCH)
    assert (blob_a.digest, blob_a.diff_id) == (blob_b.digest, blob_b.diff_id)
    assert blob_a.digest != blob_a.diff_id
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_layer_is_sorted_clamped_numeric_and_gzip_has_no_time(tmp_path: Path) -> None:
    tree = layers.read_tar(make_tar(tmp_path / "t.tar", BASE, mtime=EPOCH + 5), exclude=["dev"])
    blob = layers.write_layer(tree.values(), tmp_path / "l.tar.gz", epoch=EPOCH)
    header = (tmp_path / "l.tar.gz").read_bytes()[:10]
    assert header[3] == 0
    assert header[4:8] == b"\0\0\0\0"
    members = layer_members(blob)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.mtime, m.uname, m.gname) for m in members} == {(EPOCH, "", "")}
    assert not any(m.pax_headers for m in members)
    with open(blob.path, "rb") as fh:
        assert blob.digest == Digest.of_stream(fh)[0]
    with open(blob.path, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
        # GzipFile reads as a binary stream without being typed as one
        assert blob.diff_id == Digest.of_stream(cast(BinaryIO, gz))[0]


def test_hard_links_point_at_the_first_path_of_their_group(tmp_path: Path) -> None:
    """In path order the link sorts first here, so it must carry the bytes instead."""
    members: list[Member] = [
        ("./bin", "dir", b""),
        ("./bin/zz", "file", b"payload"),
        ("./bin/aa", "hardlink", "./bin/zz"),
    ]
    tree = layers.read_tar(make_tar(tmp_path / "t.tar", members, mtime=EPOCH))
    blob = layers.write_layer(tree.values(), tmp_path / "l.tar.gz", epoch=EPOCH)
    written = {m.name: m for m in layer_members(blob)}
    assert written["bin/aa"].isfile()
    assert written["bin/aa"].size == len(b"payload")
    assert written["bin/zz"].islnk()
    assert written["bin/zz"].linkname == "bin/aa"
    out = tmp_path / "x"
    with tarfile.open(blob.path, "r:gz") as tar:
        tar.extractall(out, filter="tar")
    assert os.path.samefile(out / "bin/aa", out / "bin/zz")


def test_whiteouts_and_files_extract_with_their_content(tmp_path: Path) -> None:
    tree = {
        "etc": Entry("etc", Kind.DIR, 0o755),
        "etc/conf": layers.Entry(
            "etc/conf",
            Kind.FILE,
            content=layers.Content(make_file(tmp_path / "c", b"k=v\n"), 0, 4, sha(b"k=v\n")),
        ),
    }
    changes = layers.with_parents([tree["etc/conf"], layers.whiteout("etc/old")], tree)
    blob = layers.write_layer(changes, tmp_path / "l.tar.gz", epoch=EPOCH)
    assert layer_bytes(blob) == {"etc/conf": b"k=v\n", "etc/.wh.old": b""}


def test_writing_the_same_path_twice_is_refused(tmp_path: Path) -> None:
    twice = [Entry("a", Kind.DIR, 0o755), Entry("a", Kind.DIR, 0o700)]
    with pytest.raises(LayerError, match=r"holds 'a' twice"):
        layers.write_layer(twice, tmp_path / "l.tar.gz", epoch=EPOCH)


def make_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- recipes and locks


def test_the_committed_recipes_load() -> None:
    app = load_recipe(RECIPES_DIR / "app.toml")
    assert [layer.kind.value for layer in app.layers] == ["debian", "python", "node"]
    assert {p.name: p.version for p in app.layers[1].python_packages}["requests"] == "2.19.0"
    assert app.created == "2024-01-01T00:00:00Z"
    assert load_recipe(RECIPES_DIR / "minbase.toml").layers == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'other'", r"name 'other' must be lowercase .* and match the file name"),
        ("name = 'r'\ndescription = 'd'", r"field 'source_date_epoch' is missing"),
        (
            "name = 'r'\ndescription = 'd'\nsource_date_epoch = '1'",
            r"field 'source_date_epoch' must be int, got '1'",
        ),
        (
            "name = 'r'\ndescription = 'd'\nsource_date_epoch = 1\n[base]\nsuite = 'b'\n"
            "variant = 'minbase'\narchitecture = 'amd64'\nexclude = ['/dev']",
            r"field 'base.exclude' is '/dev'; expected a relative path",
        ),
        (
            "name = 'r'\ndescription = 'd'\nsource_date_epoch = 1\n[base]\nsuite = 'b'\n"
            "variant = 'minbase'\narchitecture = 'amd64'\n[[layer]]\nkind = 'rpm'\ncomment = ''",
            r"layer\[0\]\.kind is 'rpm'",
        ),
        (
            "name = 'r'\ndescription = 'd'\nsource_date_epoch = 1\n[base]\nsuite = 'b'\n"
            "variant = 'minbase'\narchitecture = 'amd64'\n[[layer]]\nkind = 'node'\n"
            "comment = ''\nprefix = 'app'\npackages = []\n[[layer]]\nkind = 'debian'\n"
            "comment = ''\ninclude = []\n[config]",
            r"a debian layer follows a python or node layer",
        ),
        (
            "name = 'r'\ndescription = 'd'\nsource_date_epoch = 1\ncolour = 1\n[base]\n"
            "suite = 'b'\nvariant = 'minbase'\narchitecture = 'amd64'\n[config]",
            r"unknown field 'colour'",
        ),
        ("name = [", r"is not valid TOML"),
    ],
)
def test_bad_recipes_are_refused_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)


def test_recipe_key_follows_the_recipe_and_the_apt_sources(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES_DIR / "minbase.toml")
    sources = make_file(tmp_path / "debian.sources", b"Types: deb\n")
    key = recipe_key(recipe, sources)
    assert key == recipe_key(recipe, sources)
    assert key != recipe_key(recipe, None)
    edited = tmp_path / "minbase.toml"
    edited.write_text((RECIPES_DIR / "minbase.toml").read_text().replace("1704067200", "0"))
    assert recipe_key(load_recipe(edited), sources) != key


def test_diff_locks_reports_drift_per_package() -> None:
    old = {
        "debian": {"libc6": "2.36-9+deb12u9", "gone": "1"},
        "python": {"requests": {"version": "2.19.0"}},
        "manifest": "sha256:a",
    }
    new = {
        "debian": {"libc6": "2.36-9+deb12u10", "new": "2"},
        "python": {"requests": {"version": "2.19.0"}},
        "manifest": "sha256:b",
    }
    assert diff_locks(old, new) == [
        "debian gone: 1 -> (absent)",
        "debian libc6: 2.36-9+deb12u9 -> 2.36-9+deb12u10",
        "debian new: (absent) -> 2",
        "manifest: sha256:a -> sha256:b",
    ]
    assert diff_locks(new, new) == []


def test_dpkg_packages_lists_installed_ones_only(tmp_path: Path) -> None:
    status = (
        b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Version: 2.36-9+deb12u10\n\n"
        b"Package: old\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n"
        b"Package: libgcc-s1\nStatus: install ok installed\nArchitecture: i386\nVersion: 12.2\n"
    )
    members: list[Member] = [
        ("var", "dir", b""),
        ("var/lib", "dir", b""),
        ("var/lib/dpkg", "dir", b""),
        ("var/lib/dpkg/status", "file", status),
    ]
    tar = make_tar(tmp_path / "s.tar", members, mtime=EPOCH)
    assert dpkg_packages(layers.read_tar(tar)) == {
        "libc6": "2.36-9+deb12u10",
        "libgcc-s1:i386": "12.2",
    }


def test_require_image_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(FixtureMissingError) as caught:
        require_image("minbase", tmp_path)
    assert f"run '{MAKE_TARGET}' first" in caught.value.diagnostics()


def test_offline_build_without_a_cache_names_the_make_target(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES_DIR / "minbase.toml")
    with pytest.raises(FixtureMissingError, match=r"is not in the cache") as caught:
        build_image(recipe, out=tmp_path / "out", cache=tmp_path / "cache", offline=True)
    assert MAKE_TARGET in caught.value.diagnostics()
    assert not any((tmp_path / "out").iterdir())  # nothing half-built is left


def test_cli_refuses_an_unknown_recipe_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["nosuch", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "images/build.py: error: no recipe " in err
    assert "(choose one of: app, minbase, all)" in err


# ----------------------------------------------------------------- the real image


@pytest.mark.slow
@pytest.mark.tools
def test_minbase_rebuilds_to_the_same_digest_and_skopeo_reads_it(tmp_path: Path) -> None:
    """Uses the image and the Debian root tree that `make images` cached; rebuilds offline."""
    require_tools("skopeo", "umoci")
    try:
        cached = require_image("minbase", DEFAULT_OUT)
    except FixtureMissingError as e:
        pytest.fail(e.diagnostics())
    recipe = load_recipe(RECIPES_DIR / "minbase.toml")
    again = build_image(
        recipe,
        out=tmp_path / "out",
        cache=DEFAULT_CACHE,
        force=True,
        offline=True,
    )
    assert again.manifest == cached.manifest
    assert not again.cached
    for image in (cached, again):
        inspected = json.loads(
            subprocess.run(
                ["skopeo", "inspect", image.ref], capture_output=True, check=True, text=True
            ).stdout
        )
        assert inspected["Digest"] == str(cached.manifest)
        assert inspected["Created"] == "2024-01-01T00:00:00Z"
    archived = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{again.docker_archive}"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    )
    assert len(archived["Layers"]) == 1
    assert (
        hashlib.sha256(again.docker_archive.read_bytes()).hexdigest()
        == hashlib.sha256(cached.docker_archive.read_bytes()).hexdigest()
    )
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{again.layout}:minbase:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    assert (bundle / "rootfs/etc/debian_version").read_text().startswith("12.")
    shutil.rmtree(bundle)
