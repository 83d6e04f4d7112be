"""``stella images load`` without ``--tag``: the name comes from the layout, and is said."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, build_image

BASE = [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(stella, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def load(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = run(home, "--json", "images", "load", *args)
    assert code == 0, err
    loaded: dict[str, Any] = json.loads(out)
    return loaded


@pytest.fixture
def initialized(home: Path) -> Path:
    assert run(home, "init")[0] == 0
    return home


def annotate(layout_dir: Path, annotations: dict[str, str], *, drop_ref_name: bool) -> None:
    """Set annotations on the layout's one index.json entry, as other tools write them."""
    index_path = layout_dir / "index.json"
    index = json.loads(index_path.read_bytes())
    entry = index["manifests"][0]
    kept = dict(entry.get("annotations", {}))
    if drop_ref_name:
        kept.pop("org.opencontainers.image.ref.name", None)
    entry["annotations"] = {**kept, **annotations}
    if not entry["annotations"]:
        del entry["annotations"]
    index_path.write_text(json.dumps(index))


def test_a_bare_tag_goes_with_the_directory_name(initialized: Path, tmp_path: Path) -> None:
    """umoci, skopeo and buildah write ``ref.name: bookworm``; the image is ``DIR:bookworm``."""
    build_image(tmp_path / "debian-app", [BASE], tag="bookworm")
    code, out, err = run(initialized, "images", "load", f"oci:{tmp_path / 'debian-app'}:bookworm")
    assert (code, err) == (0, "")
    assert out.startswith("loaded debian-app:bookworm sha256:")
    assert out.endswith(
        "\nnamed debian-app:bookworm from the directory's name and the layout's tag "
        "'bookworm'; choose with --tag\n"
    )
    listed = json.loads(run(initialized, "--json", "images", "list")[1])["images"]
    assert [i["name"] for i in listed] == ["debian-app:bookworm"]


def test_json_says_where_the_name_came_from(initialized: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "web", [BASE], tag="2.1")
    loaded = load(initialized, f"oci:{tmp_path / 'web'}")
    assert (loaded["name"], loaded["namedFrom"]) == (
        "web:2.1",
        "the directory's name and the layout's tag '2.1'",
    )
    again = load(initialized, f"oci:{tmp_path / 'web'}", "--tag", "site:3")
    assert (again["name"], again["namedFrom"]) == ("site:3", "--tag")


def test_a_full_ref_name_is_kept(initialized: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "x", [BASE], tag="registry.example/team/app:1.0")
    loaded = load(initialized, f"oci:{tmp_path / 'x'}")
    assert loaded["name"] == "registry.example/team/app:1.0"
    assert loaded["namedFrom"] == "the layout's org.opencontainers.image.ref.name annotation"


def test_containerd_name_wins_over_a_bare_tag(initialized: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "export", [BASE], tag="1.2")
    annotate(
        tmp_path / "export",
        {"io.containerd.image.name": "docker.io/library/nginx:1.2"},
        drop_ref_name=False,
    )
    loaded = load(initialized, f"oci:{tmp_path / 'export'}")
    assert loaded["name"] == "nginx:1.2"
    assert loaded["namedFrom"] == "the layout's io.containerd.image.name annotation"


def test_without_a_name_the_directory_names_it(initialized: Path, tmp_path: Path) -> None:
    """``base.name`` names the image this one was built from, never this image."""
    build_image(tmp_path / "My Build_v2", [BASE], tag="x:1")
    annotate(
        tmp_path / "My Build_v2",
        {"org.opencontainers.image.base.name": "docker.io/library/debian:bookworm"},
        drop_ref_name=True,
    )
    loaded = load(initialized, f"oci:{tmp_path / 'My Build_v2'}")
    assert (loaded["name"], loaded["namedFrom"]) == ("my-build_v2:latest", "the directory's name")


def test_a_directory_name_that_makes_no_name_asks_for_tag(
    initialized: Path, tmp_path: Path
) -> None:
    build_image(tmp_path / "___", [BASE], tag="x:1")
    annotate(tmp_path / "___", {}, drop_ref_name=True)
    code, out, err = run(initialized, "images", "load", f"oci:{tmp_path / '___'}")
    assert (code, out) == (2, "")
    assert err == (
        f"stella: error: oci:{tmp_path / '___'}: no image name can be made from '___' and the "
        "layout names none (give one with --tag NAME:TAG)\n"
    )


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_an_archive_without_repo_tags_is_named_after_its_file(
    initialized: Path, tmp_path: Path
) -> None:
    build_image(tmp_path / "src", [BASE], tag="app:1")
    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            f"oci:{tmp_path / 'src'}:app:1",
            f"docker-archive:{tmp_path}/tool.tar",
        ],
        check=True,
        capture_output=True,
    )
    loaded = load(initialized, f"docker-archive:{tmp_path / 'tool.tar'}")
    assert (loaded["name"], loaded["namedFrom"]) == ("tool:latest", "the file's name")


def test_store_only_commands_say_to_load_a_layout_first(initialized: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "web", [BASE], tag="1")
    load(initialized, f"oci:{tmp_path / 'web'}:1")
    code, out, err = run(initialized, "images", "rm", f"oci:{tmp_path / 'web'}:1")
    assert (code, out) == (2, "")
    assert err == (
        f"stella: error: 'oci:{tmp_path / 'web'}:1' is not a name in the local store: this "
        "command works on stored images (load it first with 'stella images load "
        f"oci:{tmp_path / 'web'}:1', then use the name it prints)\n"
    )
    code, out, err = run(initialized, "--json", "images", "inspect", f"dir:{tmp_path}")
    assert code == 2
    assert err.endswith("(a root file system cannot be stored; 'stella scan' reads it as it is)\n")
