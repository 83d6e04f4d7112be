"""A newcomer's path end to end, with the real ``stella`` and ``skopeo``: ``images load
oci:DIR:TAG`` without ``--tag``, ``stella serve``, then ``skopeo inspect`` and ``skopeo copy``
by the repository path of an image mirrored from a registry (stored with its host and port)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from appliance.home import Home
from appliance.registry.auth import Authenticator
from appliance.registry.errors import ServeConfigError
from appliance.registry.names import PrefixMap, ServedNames, served_name
from appliance.registry.server import ListenAddress, RegistryServer, ServeOptions
from bundles.distribution.credentials import Credentials
from bundles.oci import OCILayout
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, build_image
from tests.mirror.registry_fixture import clean_env, free_port

BASE = [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]
MIRRORED = "127.0.0.1:22775/hidden/app"
STELLA = str(Path(sys.executable).parent / "stella")
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def stella(home: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [STELLA, "--home", str(home), "--json", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def skopeo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--insecure-policy", *argv],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


@contextmanager
def serving(home: Path, *args: str) -> Iterator[tuple[str, dict[str, Any], IO[str]]]:
    """``stella serve`` as a process; yields its address, its start line and its stderr."""
    port = free_port()
    proc = subprocess.Popen(
        [STELLA, "--home", str(home), "--json", "serve", "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        started = json.loads(proc.stdout.readline())
        yield f"127.0.0.1:{port}", started, proc.stderr
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def get(url: str) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    return s.get(url, timeout=30)


@needs_skopeo
def test_newcomer_loads_without_tag_serves_and_skopeo_pulls(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stella(home, "init")
    # a layout as skopeo writes it: ref.name is the bare tag "bookworm"
    build_image(tmp_path / "built", [BASE], tag="x:1")
    copied = skopeo(
        "copy", f"oci:{tmp_path / 'built'}:x:1", f"oci:{tmp_path / 'debian-app'}:bookworm"
    )
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "debian-app" / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "bookworm"}
    loaded = stella(home, "images", "load", f"oci:{tmp_path / 'debian-app'}:bookworm")
    assert loaded["name"] == "debian-app:bookworm"
    # an image mirrored from a registry: its layout names it with the registry's host and port
    build_image(tmp_path / "mirrored", [BASE, [F("srv/app", b"app\n")]], tag=f"{MIRRORED}:1")
    mirrored = stella(home, "images", "load", f"oci:{tmp_path / 'mirrored'}")
    assert mirrored["name"] == f"{MIRRORED}:1"

    with serving(home) as (address, started, _):
        assert started["repositories"] == {"debian-app": "debian-app", "hidden/app": MIRRORED}
        assert started["collisions"] == {}
        base = f"http://{address}/v2"
        assert get(f"{base}/_catalog").json() == {"repositories": ["debian-app", "hidden/app"]}
        assert get(f"{base}/hidden/app/tags/list").json() == {"name": "hidden/app", "tags": ["1"]}
        inspected = skopeo("inspect", "--tls-verify=false", f"docker://{address}/hidden/app:1")
        assert inspected.returncode == 0, inspected.stderr
        assert json.loads(inspected.stdout)["Digest"] == mirrored["digest"]
        out = tmp_path / "pulled"
        pulled = skopeo(
            "copy", "--src-tls-verify=false", f"docker://{address}/hidden/app:1", f"oci:{out}:app:1"
        )
        assert pulled.returncode == 0, pulled.stderr
        assert str(OCILayout.open(out).resolve("app:1").digest) == mirrored["digest"]
        newcomer = skopeo(
            "inspect", "--tls-verify=false", f"docker://{address}/debian-app:bookworm"
        )
        assert newcomer.returncode == 0, newcomer.stderr
        assert json.loads(newcomer.stdout)["Digest"] == loaded["digest"]


def test_two_hosts_same_path_are_reported_not_merged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stella(home, "init")
    build_image(tmp_path / "a", [BASE], tag=f"{MIRRORED}:1")
    build_image(tmp_path / "b", [BASE, [F("b", b"b")]], tag="mirror.example/hidden/app:2")
    stella(home, "images", "load", f"oci:{tmp_path / 'a'}")
    stella(home, "images", "load", f"oci:{tmp_path / 'b'}")
    with serving(home) as (address, started, stderr):
        assert started["collisions"] == {
            "hidden/app": ["127.0.0.1:22775/hidden/app", "mirror.example/hidden/app"]
        }
        assert stderr.readline() == (
            "stella: warning: hidden/app is claimed by 127.0.0.1:22775/hidden/app and "
            "mirror.example/hidden/app: not served under that name (give --map, e.g. "
            "--map 127.0.0.1:22775=OTHER)\n"
        )
        base = f"http://{address}/v2"
        assert get(f"{base}/_catalog").json() == {"repositories": []}
        refused = get(f"{base}/hidden/app/tags/list")
        assert refused.status_code == 404
        assert refused.json()["errors"][0]["message"] == (
            "repository hidden/app is ambiguous: the store holds 127.0.0.1:22775/hidden/app and "
            "mirror.example/hidden/app (start 'stella serve' with --map STORED=SERVED to serve "
            "them apart)"
        )
        assert get(f"{base}/hidden/app/manifests/1").status_code == 404
        # a name without a port is still reachable as stored
        assert get(f"{base}/mirror.example/hidden/app/tags/list").json()["tags"] == ["2"]
    with serving(home, "--map", "mirror.example=example") as (address, started, _):
        assert started["collisions"] == {}
        assert started["maps"] == {"mirror.example": "example"}
        catalog = get(f"http://{address}/v2/_catalog").json()["repositories"]
        assert catalog == ["example/hidden/app", "hidden/app"]
        tags = get(f"http://{address}/v2/example/hidden/app/tags/list").json()
        assert tags == {"name": "example/hidden/app", "tags": ["2"]}


def test_a_push_to_a_served_name_tags_the_stored_repository(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    build_image(home.oci, [BASE], tag=f"{MIRRORED}:1")
    user = Credentials("builder", "correct horse")
    options = ServeOptions(ListenAddress("127.0.0.1", 0), True, Authenticator.single(user), maps=())
    with RegistryServer(home, options) as server:
        s = requests.Session()
        s.trust_env = False
        s.auth = (user.username, user.password)
        base = f"http://{server.address}/v2/hidden/app/manifests"
        got = s.get(f"{base}/1")
        assert got.status_code == 200
        put = s.put(
            f"{base}/2", data=got.content, headers={"Content-Type": got.headers["Content-Type"]}
        )
        assert put.status_code == 201, put.text
    assert set(OCILayout.open(home.oci).tags()) == {f"{MIRRORED}:1", f"{MIRRORED}:2"}


@pytest.mark.parametrize(
    ("repository", "maps", "served"),
    [
        ("127.0.0.1:22775/hidden/app", (), "hidden/app"),
        ("registry.example/team/app", (), "team/app"),
        ("localhost/app", (), "app"),
        ("team/app", (), "team/app"),
        ("app", (), "app"),
        ("127.0.0.1:22775/app", ("127.0.0.1:22775=mirror",), "mirror/app"),
        ("registry.example/team/app", ("registry.example/team=",), "app"),
        ("registry.example/team/app", ("registry.example=r", "registry.example/team=t"), "t/app"),
        ("registry.example/teams/app", ("registry.example/team=t",), "teams/app"),
        ("127.0.0.1:22775/Upper/app", (), None),
    ],
)
def test_served_names(repository: str, maps: tuple[str, ...], served: str | None) -> None:
    assert served_name(repository, [PrefixMap.parse(m) for m in maps]) == served


def test_a_local_name_and_a_mirrored_one_collide() -> None:
    names = ServedNames.build(["app", "registry.example/app", "other"])
    assert dict(names.repositories) == {"other": "other"}
    assert dict(names.collisions) == {"app": ("app", "registry.example/app")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirror", "--map 'mirror' is not STORED=SERVED"),
        ("=x", "--map '=x' is not STORED=SERVED"),
        ("a=Team", "--map 'a=Team': 'Team' is not a repository name"),
    ],
)
def test_bad_maps_are_refused(text: str, message: str) -> None:
    with pytest.raises(ServeConfigError) as caught:
        PrefixMap.parse(text)
    assert caught.value.message == message
