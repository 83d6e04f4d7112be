"""The appliance's own image: its recipe pins every dependency the project declares, the
builder adds the project's wheel, a non-root user and its home (on small trees, no network),
and, over the image ``make appliance-image`` builds: a rebuild gives the same digest, the
image runs ``stella`` as that user, and the appliance gates its own image into release
evidence that verifies."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from appliance.home import Home
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.store import open_knowledge
from appliance.store.knowledge import install_snapshot
from bundles.digest import Digest
from bundles.keys import PublicKey
from bundles.oci import OCILayout
from bundles.snapshot import DatasetType, build_dataset
from images import layers
from images.build import (
    DEFAULT_CACHE,
    DEFAULT_OUT,
    PROJECT_IMAGES,
    BuiltImage,
    FixtureMissingError,
    build_image,
    image_key,
    main,
    project_key,
    project_sources,
    project_stage,
    require_image,
)
from images.recipe import RECIPES_DIR, LayerKind, load_recipe, recipe_key
from images.release_evidence import EVIDENCE_FILE, KEY_FILE, RVA_FILE, SBOM_FILE
from images.release_evidence import main as release_main
from tests.conftest import require_tools

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPE = RECIPES_DIR / "appliance.toml"
TARGET = "make appliance-image"


def appliance_image() -> BuiltImage:
    try:
        return require_image("appliance", DEFAULT_OUT)
    except FixtureMissingError as e:
        pytest.fail(e.diagnostics())


# ----------------------------------------------------------------- recipe and builder


def test_the_recipe_pins_every_declared_dependency_and_runs_stella() -> None:
    recipe = load_recipe(RECIPE)
    assert [layer.kind for layer in recipe.layers] == [LayerKind.DEBIAN, LayerKind.PYTHON]
    assert recipe.layers[0].include == ("python3",)
    pinned = {canonicalize_name(p.name) for p in recipe.layers[1].python_packages}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {canonicalize_name(d.split(">")[0].split("<")[0].split("=")[0]) for d in declared}
    assert names <= pinned, f"not pinned in {RECIPE.name}: {sorted(names - pinned)}"
    assert recipe.config.entrypoint == ("stella",)
    assert "STELLA_HOME=/var/lib/stella" in recipe.config.env
    assert PROJECT_IMAGES["appliance"].home == "var/lib/stella"
    assert PROJECT_IMAGES["appliance"].uid != 0


def test_project_sources_leave_out_byte_code_and_the_key_follows_them(tmp_path: Path) -> None:
    for rel in ("pyproject.toml", "README.md", "bundles/a.py", "mirror/b.py", "tui/c.tcss"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "appliance/__pycache__").mkdir(parents=True)
    (tmp_path / "appliance/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "appliance/old.pyc").write_bytes(b"\0")
    (tmp_path / "appliance/data.json").write_text("{}")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/t.py").write_text("")
    assert list(project_sources(tmp_path)) == [
        "README.md",
        "appliance/data.json",
        "bundles/a.py",
        "mirror/b.py",
        "pyproject.toml",
        "tui/c.tcss",
    ]
    key = project_key(tmp_path)
    (tmp_path / "tests/t.py").write_text("changed")  # not in the wheel: same key
    assert project_key(tmp_path) == key
    (tmp_path / "bundles/a.py").write_text("changed")
    assert project_key(tmp_path) != key


def test_the_image_key_covers_the_project_only_for_the_appliance() -> None:
    appliance = load_recipe(RECIPE)
    assert image_key(appliance, None) != recipe_key(appliance, None)
    minbase = load_recipe(RECIPES_DIR / "minbase.toml")
    assert image_key(minbase, None) == recipe_key(minbase, None)


def test_a_missing_appliance_image_names_its_make_target(tmp_path: Path) -> None:
    with pytest.raises(FixtureMissingError) as caught:
        require_image("appliance", tmp_path)
    assert f"run '{TARGET}' first" in caught.value.diagnostics()


def test_all_means_the_fixture_images_and_an_unknown_name_mentions_the_appliance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["nosuch", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "(the appliance's own image: appliance)" in err
    assert "(choose one of: app, minbase, all)" in err


def _wheel(path: Path) -> Path:
    """A minimal, valid wheel of stella-ops with one module and one console script."""
    files = {
        "stella_demo.py": b"def main():\n    return 0\n",
        "stella_ops-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: stella-ops\n"
        b"Version: 0.1.0\n",
        "stella_ops-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        "stella_ops-0.1.0.dist-info/entry_points.txt": b"[console_scripts]\n"
        b"stella = stella_demo:main\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("stella_ops-0.1.0.dist-info/RECORD,,")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("stella_ops-0.1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_project_stage_installs_the_wheel_and_adds_the_user_and_its_home(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPE)
    layer = recipe.layers[1]
    project = PROJECT_IMAGES["appliance"]
    cache = tmp_path / "cache"
    _wheel(cache / "project" / project_key() / "stella_ops-0.1.0-py3-none-any.whl")
    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (base / "etc/group").write_text("root:x:0:\n")
    lower = layers.read_dir(base, mtime=recipe.source_date_epoch)
    stage = tmp_path / "stage"
    stage.mkdir()
    lock = project_stage(recipe, layer, project, lower, stage, cache)
    assert lock["stella-ops"]["version"] == "0.1.0"
    assert lock["stella-ops"]["sources"] == project_key()
    uid = project.uid
    assert (stage / "etc/passwd").read_text() == (
        f"root:x:0:0:root:/root:/bin/bash\nstella:x:{uid}:{uid}::/var/lib/stella:/usr/sbin/nologin\n"
    )
    assert (stage / "etc/group").read_text() == f"root:x:0:\nstella:x:{uid}:\n"
    assert (stage / project.home).is_dir()
    script = (stage / layer.scripts / "stella").read_text()
    assert script.startswith("#!/usr/bin/python3\n")
    assert (stage / layer.target / "stella_ops-0.1.0.dist-info" / "INSTALLER").read_text() == (
        "pip\n"
    )


# ----------------------------------------------------------------- the built image


@pytest.mark.slow
@pytest.mark.tools
def test_the_appliance_image_rebuilds_to_the_same_digest(tmp_path: Path) -> None:
    """Offline, from the cache `make appliance-image` filled, with the project's wheel built
    again from the same sources: the same manifest digest."""
    require_tools("skopeo")
    cached = appliance_image()
    cache = tmp_path / "cache"
    cache.mkdir()
    for part in ("rootfs", "pip"):
        (cache / part).symlink_to(DEFAULT_CACHE / part)
    again = build_image(
        load_recipe(RECIPE), out=tmp_path / "out", cache=cache, force=True, offline=True
    )
    assert again.manifest == cached.manifest
    assert (cache / "project" / project_key()).is_dir()  # the wheel was built again
    layout = OCILayout.open(again.layout)
    manifest = json.loads(layout.read_blob(again.manifest))
    config = json.loads(layout.read_blob(Digest.parse(manifest["config"]["digest"])))
    uid = PROJECT_IMAGES["appliance"].uid
    assert config["config"]["Entrypoint"] == ["stella"]
    assert config["config"]["User"] == f"{uid}:{uid}"
    assert config["created"] == "2024-01-01T00:00:00Z"
    assert len(manifest["layers"]) == 3


@pytest.mark.slow
@pytest.mark.tools
def test_the_image_runs_stella_as_its_own_user(tmp_path: Path) -> None:
    require_tools("umoci", "chroot")
    if os.geteuid() != 0:
        pytest.fail("unpacking an image and chroot need root; run 'make test' as root")
    image = appliance_image()
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{image.layout}:appliance:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    rootfs = bundle / "rootfs"
    uid = PROJECT_IMAGES["appliance"].uid
    home = rootfs / "var/lib/stella"
    assert (home.stat().st_uid, home.stat().st_mode & 0o777) == (uid, 0o700)

    def inside(*argv: str) -> subprocess.CompletedProcess[str]:
        env = ["/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin"]
        env += ["STELLA_HOME=/var/lib/stella", "PYTHONDONTWRITEBYTECODE=1"]
        return subprocess.run(
            ["chroot", f"--userspec={uid}:{uid}", str(rootfs), *env, *argv],
            capture_output=True,
            text=True,
            check=False,
        )

    version = inside("stella", "--version")
    assert (version.returncode, version.stdout) == (0, "stella, version 0.1.0\n"), version.stderr
    init = inside("stella", "--json", "init")
    assert init.returncode == 0, init.stderr
    assert (home / "keys").is_dir()
    assert (home / "keys").stat().st_uid == uid
    doctor = inside("stella", "--json", "doctor")
    checks = {c["name"]: c["status"] for c in json.loads(doctor.stdout)["checks"]}
    assert checks["home"] == "ok"
    assert inside("stella-mirror", "--version").returncode == 0


@pytest.mark.slow
@pytest.mark.tools
def test_release_evidence_gates_the_appliance_image_with_itself(tmp_path: Path) -> None:
    require_tools("skopeo")
    image = appliance_image()
    home = Home(tmp_path / "home")
    home.init()
    osv = {
        "id": "TEST-2026-0001",
        "aliases": ["CVE-2099-0001"],
        "modified": "2026-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "click"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }
    kev = {"id": "CVE-2099-0001", "cveID": "CVE-2099-0001", "dateAdded": "2026-01-02"}
    store = open_knowledge(home)
    try:
        snapshot = install_snapshot(
            store,
            [
                build_dataset("osv-pypi", DatasetType.OSV, [osv]),
                build_dataset("kev", DatasetType.KEV, [kev]),
            ],
            sequence=1,
            channel="stable",
            created="2026-11-20T00:00:00Z",
            bundle=Digest.of_bytes(b"bundle"),
        )
    finally:
        store.close()
    out = tmp_path / "evidence"
    code = release_main(
        ["--home", str(home.root), "--out", str(out), "--at", "2026-11-23T06:00:00Z"]
    )
    assert code == 3  # a known exploited vulnerability in click: FAIL, and the evidence says so
    evidence = json.loads((out / EVIDENCE_FILE).read_text())
    assert evidence["image"]["digest"] == str(image.manifest)
    assert evidence["verdict"] == "FAIL"
    assert "RISK.CVE.KEV" in evidence["reasonCodes"]
    assert evidence["knowledgeSnapshot"]["digest"] == str(snapshot)
    for entry in evidence["files"]:
        data = (out / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    key = PublicKey.from_pem((out / KEY_FILE).read_bytes())
    statement = sigstore.verify(
        sigstore.read((out / RVA_FILE).read_bytes()), [key], predicate_type=PREDICATE_TYPE
    )
    assert str(statement.subjects[0].sha256) == evidence["image"]["digest"]
    purls = {c.get("purl", "") for c in json.loads((out / SBOM_FILE).read_text())["components"]}
    assert "pkg:pypi/stella-ops@0.1.0" in purls
    assert any(p.startswith("pkg:deb/debian/python3.11@") for p in purls)
