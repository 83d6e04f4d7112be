"""Two tenants of one home, through the real command line: each is created, loads an image
and gates it against the home's shared knowledge; then every way one tenant could reach the
other (an image or file argument inside it, an output written into it, a symbolic link, a
traversing name, disagreeing options, the other's key or trust material) is refused."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance import tenancy
from appliance.cli import cli
from appliance.home import Home
from appliance.store.knowledge import KnowledgeStore
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info

AT = "2026-12-01T00:00:00Z"
OUTSIDE = "outside the directory of tenant"


def run(base: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(cli, ["--home", str(base), *args])
    assert tenancy.current() is None, "a command left the process confined"
    return result.exit_code, result.stdout, result.stderr


def ok(base: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, out, err = run(base, "--json", *args, env=env)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def refused(base: Path, *args: str, expect: str = OUTSIDE) -> str:
    code, out, err = run(base, *args)
    assert code != 0, out
    assert expect in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A home with shared knowledge and two tenants, each with one image gated."""
    monkeypatch.delenv(tenancy.ENV, raising=False)
    base = tmp_path / "home"
    ok(base, "init")
    shared = install_knowledge(Home(base))
    ok(base, "--tenant", "globex", "init")  # the global option
    ok(base, "init", "--tenant", "acme")  # the command's own option (the home has tenants now)
    layout = tmp_path / "layout"
    build_image(layout, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    verdicts = {}
    for name in ("acme", "globex"):
        ok(base, "--tenant", name, "images", "load", f"oci:{layout}", "--tag", "app:1")
        out = tmp_path / f"{name}.rva.json"
        code, stdout, err = run(
            base, "--tenant", name, "--json", "gate", "app:1", "--at", AT, "--out", str(out)
        )
        assert code == 3, err  # FAIL: the critical advisory in the shared knowledge
        verdicts[name] = json.loads(stdout)
    return {"base": base, "shared": str(shared), "tmp": tmp_path, "verdicts": verdicts}


def tenant_dir(site: dict[str, Any], name: str) -> Path:
    path: Path = site["base"] / "tenants" / name
    return path


def test_each_tenant_has_its_own_stores_and_key_and_shares_the_knowledge(
    site: dict[str, Any],
) -> None:
    base = site["base"]
    acme, globex = tenant_dir(site, "acme"), tenant_dir(site, "globex")
    for d in (acme, globex, base / "tenants"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for d in (acme, globex):
        for name in ("state.db", "keys/appliance.key", "keys/keyring.json", "oci", "trust"):
            assert (d / name).exists(), name
        assert not (d / "knowledge.db").exists()  # the shared one is read
    assert (acme / "keys/appliance.pub").read_bytes() != (
        globex / "keys/appliance.pub"
    ).read_bytes()
    for name in ("acme", "globex"):
        verdict = site["verdicts"][name]
        assert verdict["verdict"] == "FAIL"
        assert verdict["knowledgeSnapshot"]["digest"] == site["shared"]
    listed = ok(base, "tenants", "list")
    assert [t["name"] for t in listed["tenants"]] == ["acme", "globex"]
    assert [t["schema"] for t in listed["tenants"]] == ["tenant_acme", "tenant_globex"]
    # the administrator's own image store has nothing of the tenants'
    assert ok(base, "images", "list")["images"] == []


def test_audit_records_name_the_tenant(site: dict[str, Any]) -> None:
    base = site["base"]
    for name in ("acme", "globex"):
        doc = ok(base, "--tenant", name, "audit", "list")
        assert doc["tenant"] == name
        assert doc["count"] >= 2  # the image load and the gate
        for record in doc["records"]:
            assert f"--tenant {name} " in record["actor"], record
        code, out, _ = run(base, "--tenant", name, "audit", "list")
        assert code == 0
        assert out.startswith(f"tenant {name}\n")
        ok(base, "--tenant", name, "audit", "verify")


def test_file_and_image_arguments_inside_another_tenant_are_refused(
    site: dict[str, Any],
) -> None:
    base, tmp = site["base"], site["tmp"]
    globex = tenant_dir(site, "globex")
    rva = tmp / "globex.rva.json"
    inside = globex / "inbox" / "rva.json"
    inside.write_bytes(rva.read_bytes())  # as globex's operator could
    for args in (
        ("verify", str(inside)),
        ("explain", str(inside)),
        ("replay", str(inside)),
        ("scan", f"oci:{globex / 'oci'}:app:1"),
        ("gate", f"oci:{globex / 'oci'}:app:1", "--at", AT),
        ("images", "load", f"oci:{globex / 'oci'}", "--tag", "stolen:1"),
        ("vex", "import", str(inside)),
        ("verify", "app:1", "--key", str(globex / "keys" / "appliance.pub")),
        ("scan", f"dir:{globex / 'keys'}"),
        ("scan", f"docker-archive:{inside}"),
        ("images", "load", f"docker-archive:{inside}"),
        ("verify-audit-package", str(inside), "--key", str(globex / "keys" / "appliance.pub")),
        ("trust", "add", str(globex / "keys" / "appliance.pub")),
        ("import", str(inside)),
        # writing into the other tenant
        ("gate", "app:1", "--at", AT, "--out", str(globex / "inbox" / "planted.json")),
        ("export-audit-package", "app:1", "--out", str(globex / "inbox" / "p.zip")),
        ("keys", "export-public", "--out", str(globex / "keys" / "appliance.pub")),
        # ".." climbing out of one's own directory
        ("verify", str(tenant_dir(site, "acme") / ".." / "globex" / "inbox" / "rva.json")),
    ):
        refused(base, "--tenant", "acme", *args)
    assert not (globex / "inbox" / "planted.json").exists()
    assert not (globex / "inbox" / "p.zip").exists()


def test_symbolic_links_out_of_a_tenant_are_not_followed(site: dict[str, Any]) -> None:
    base = site["base"]
    acme, globex = tenant_dir(site, "acme"), tenant_dir(site, "globex")
    (acme / "inbox" / "theirs").symlink_to(globex)
    refused(
        base,
        "--tenant",
        "acme",
        "verify",
        str(acme / "inbox" / "theirs" / "keys" / "appliance.pub"),
    )
    # the tenant's own state store replaced by a link to the other's: refused, not opened
    (acme / "state.db").rename(acme / "state.db.mine")
    (acme / "state.db").symlink_to(globex / "state.db")
    refused(base, "--tenant", "acme", "audit", "list")
    (acme / "state.db").unlink()
    (acme / "state.db.mine").rename(acme / "state.db")
    # a tenant directory that is itself a link to another tenant is not that tenant
    (base / "tenants" / "initech").symlink_to(globex)
    refused(base, "--tenant", "initech", "audit", "list", expect="is a symbolic link")
    refused(base, "--tenant", "initech", "init", expect="is a symbolic link")
    assert not (globex / tenancy.TENANT_MARKER).read_text().startswith("initech")
    # nor is a tenants/ directory that is a link out of the home (paths would leave the home)
    (base / "tenants" / "initech").unlink()
    moved = site["tmp"] / "elsewhere"
    (base / "tenants").rename(moved)
    (base / "tenants").symlink_to(moved)
    refused(base, "--tenant", "acme", "audit", "list", expect="is a symbolic link")
    refused(base, "audit", "list", expect="is a symbolic link")


@pytest.mark.parametrize(
    "name", ["../x", "..", "a/b", "Acme", "a-b", "", "x" * 33, "1abc", "acme\n", "tenant acme"]
)
def test_bad_tenant_names_are_refused_naming_the_value(tmp_path: Path, name: str) -> None:
    base = tmp_path / "home"
    ok(base, "init")
    err = refused(base, "--tenant", name, "init", expect="is not a valid tenant name")
    assert repr(name) in err
    assert not (base / "tenants").exists()
    if name:  # an empty STELLA_TENANT counts as unset, as an empty STELLA_HOME does
        code, _, err = run(base, "audit", "list", env={tenancy.ENV: name})
        assert code == 2
        assert f"{tenancy.ENV} {name!r} is not a valid tenant name" in err


def test_option_and_environment_must_agree(site: dict[str, Any]) -> None:
    base = site["base"]
    code, _, err = run(base, "--tenant", "acme", "audit", "list", env={tenancy.ENV: "globex"})
    assert code == 2
    assert "--tenant 'acme' and STELLA_TENANT='globex' name different tenants" in err
    code, _, err = run(base, "--tenant", "acme", "init", "--tenant", "globex")
    assert code == 2
    assert "disagree" in err
    # the variable alone selects the tenant
    doc = ok(base, "audit", "list", env={tenancy.ENV: "globex"})
    assert doc["tenant"] == "globex"
    # a home given as a tenant's directory is that tenant, and confined as it
    doc = ok(tenant_dir(site, "acme"), "audit", "list")
    assert doc["tenant"] == "acme"
    assert ok(tenant_dir(site, "acme"), "--tenant", "acme", "audit", "list")["tenant"] == "acme"
    code, _, err = run(tenant_dir(site, "acme"), "--tenant", "globex", "audit", "list")
    assert code == 2
    assert "is the directory of tenant 'acme', not of 'globex'" in err
    refused(
        tenant_dir(site, "acme"),
        "verify",
        str(tenant_dir(site, "globex") / "keys" / "appliance.pub"),
    )


def test_the_administrator_cannot_reach_into_a_tenant(site: dict[str, Any]) -> None:
    base = site["base"]
    refused(
        base,
        "verify",
        str(tenant_dir(site, "acme") / "keys" / "appliance.pub"),
        expect="outside the directory of the home's administrator",
    )
    refused(
        base,
        "scan",
        f"oci:{tenant_dir(site, 'acme') / 'oci'}:app:1",
        expect="outside the directory of the home's administrator",
    )


def test_a_tenants_verdict_does_not_verify_with_another_tenants_trust(site: dict[str, Any]) -> None:
    base, tmp = site["base"], site["tmp"]
    rva = str(tmp / "acme.rva.json")
    ok(base, "--tenant", "acme", "verify", rva)
    code, out, err = run(base, "--tenant", "globex", "verify", rva)
    assert code == 1, out
    assert "which the trust policy does not trust" in err
    pub = tmp / "globex.pub"
    ok(base, "--tenant", "globex", "keys", "export-public", "--out", str(pub))
    code, out, _err = run(base, "--tenant", "acme", "verify", rva, "--key", str(pub))
    assert code != 0, out


def test_the_shared_knowledge_is_read_only_for_tenants(site: dict[str, Any]) -> None:
    base = site["base"]
    globex = Home.of(base, "globex")
    with tenancy.confined(globex.boundary):
        # the stores open it read only ...
        store = KnowledgeStore.open(globex.knowledge_db)
        try:
            assert store.active() is not None
            with pytest.raises(Exception, match="readonly"):
                store.db.connection.execute("DELETE FROM schema_versions")
        finally:
            store.close()
        # ... and nothing else may open it for writing
        with pytest.raises(tenancy.TenantBoundaryError, match="read only for tenant 'globex'"):
            sqlite3.connect(base / "knowledge.db")
        with pytest.raises(tenancy.TenantBoundaryError, match="read only"):
            open(base / "knowledge.db", "ab")  # noqa: SIM115
        with pytest.raises(tenancy.TenantBoundaryError, match=OUTSIDE):
            open(base / "state.db", "rb")  # noqa: SIM115 - the administrator's own state


def test_a_tenant_cannot_take_a_key_another_tenant_signs_with(site: dict[str, Any]) -> None:
    base = site["base"]
    acme = Home.of(base, "acme")
    globex = Home.of(base, "globex")
    theirs, admins = acme_key(site), admin_key(site)  # public keys, read before confining
    with tenancy.confined(globex.boundary):
        with pytest.raises(tenancy.TenantBoundaryError, match="already signs for tenant 'acme'"):
            globex.claim_key(theirs)
        with pytest.raises(tenancy.TenantBoundaryError, match="administrator's key"):
            globex.claim_key(admins)
    assert acme.tenant == "acme"


def acme_key(site: dict[str, Any]) -> Any:
    from bundles.keys import PublicKey

    return PublicKey.load(tenant_dir(site, "acme") / "keys" / "appliance.pub")


def admin_key(site: dict[str, Any]) -> Any:
    from bundles.keys import PublicKey

    return PublicKey.load(site["base"] / "keys" / "appliance.pub")


def test_schema_names(tmp_path: Path) -> None:
    assert Home(tmp_path).pg_schema is None
    assert Home.of(tmp_path, "acme").pg_schema == "tenant_acme"
    assert tenancy.quote_identifier("tenant_acme") == '"tenant_acme"'
    assert tenancy.quote_identifier('a"b') == '"a""b"'
    with pytest.raises(tenancy.TenantNameError):
        Home.of(tmp_path, "../x")
    assert os.sep not in tenancy.pg_schema("a_b")


def test_every_kind_of_file_access_is_checked(site: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    base = site["base"]
    acme, globex = tenant_dir(site, "acme"), tenant_dir(site, "globex")
    mine, theirs = acme / "inbox" / "mine.txt", globex / "inbox" / "theirs.txt"
    theirs.write_text("globex\n")
    outside = tmp_path / "outside.txt"
    fd = os.open(globex / "inbox", os.O_RDONLY)
    attempts: list[Callable[[], object]] = [
        lambda: open(theirs, "rb"),  # noqa: SIM115
        lambda: os.open(theirs, os.O_RDONLY),
        lambda: os.listdir(globex),
        lambda: list(os.scandir(globex / "keys")),
        lambda: os.mkdir(globex / "new"),
        lambda: os.remove(theirs),
        lambda: os.remove("theirs.txt", dir_fd=fd),
        lambda: os.rename(mine, globex / "inbox" / "planted.txt"),
        lambda: os.replace(theirs, mine),
        lambda: os.symlink(mine, globex / "inbox" / "link"),
        lambda: os.link(theirs, acme / "inbox" / "hard"),
        lambda: os.chmod(globex, 0o500),
        lambda: shutil.copyfile(theirs, mine),
        lambda: shutil.rmtree(globex / "quarantine"),
        lambda: sqlite3.connect(f"file:{globex / 'state.db'}?mode=ro", uri=True),
        lambda: open(base / "config.json", "w"),  # noqa: SIM115 - the administrator's
        lambda: os.rename(acme / "inbox", base / "inbox2"),
    ]
    with tenancy.confined(Home.of(base, "acme").boundary):
        mine.write_text("acme\n")  # its own files, and files outside the home, are its own
        outside.write_text("x")
        os.listdir(base / "tenants")  # the names of the tenants are not secret
        with sqlite3.connect(acme / "state.db") as conn:
            conn.execute("SELECT 1")
        for attempt in attempts:
            with pytest.raises(tenancy.TenantBoundaryError):
                attempt()
    os.close(fd)
    assert theirs.read_text() == "globex\n"
    assert stat.S_IMODE(globex.stat().st_mode) == 0o700
    assert not (globex / "inbox" / "planted.txt").exists()


def test_a_tenants_rescan_workers_are_confined_to_the_tenant(site: dict[str, Any]) -> None:
    base = site["base"]
    acme, globex = tenant_dir(site, "acme"), tenant_dir(site, "globex")
    digest = ok(base, "--tenant", "acme", "images", "list")["images"][0]["digest"]
    manifest = json.loads((acme / "oci" / "blobs" / Path(*digest.split(":"))).read_bytes())
    blob = Path("blobs", *manifest["config"]["digest"].split(":"))
    ok(base, "--tenant", "acme", "rescan", "--image", "app:1", "--jobs", "2")  # workers gate it
    # the image's config, which only a worker reads, replaced by a link to the other tenant's
    # copy (the same bytes): the worker, behind acme's boundary, refuses to follow it
    (acme / "oci" / blob).unlink()
    (acme / "oci" / blob).symlink_to(globex / "oci" / blob)
    code, out, err = run(
        base, "--tenant", "acme", "--json", "rescan", "--image", "app:1", "--jobs", "2"
    )
    assert code == 1, err
    assert out, err
    (image,) = json.loads(out)["images"]
    assert image["outcome"] == "failed"
    assert OUTSIDE in image["error"]


def test_a_tenants_process_lets_go_only_of_writer_locks_where_it_may_look(
    site: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a long-lived process that wrote to many layouts lets go of idle writer locks; behind a
    # tenant's boundary it must not look into the other tenants' layouts to find the idle ones
    from bundles import files

    base = site["base"]
    acme, globex = tenant_dir(site, "acme"), tenant_dir(site, "globex")
    theirs, mine = acme / "x" / ".stella" / "tmp", globex / "x" / ".stella" / "tmp"
    for tmp in (theirs, mine):
        tmp.mkdir(parents=True)
    fd, _ = files.owned_temp(theirs, prefix="blob-")  # held by this process, as administrator
    os.close(fd)
    monkeypatch.setattr(files, "_HELD", 1)  # the next new writer lets idle ones go first
    held = (os.path.realpath(theirs), os.getpid())
    token = files._OWNERS[held][0]
    with tenancy.confined(tenancy.Boundary.of(base, "globex")):
        fd, path = files.owned_temp(mine, prefix="blob-")  # refused before the fix
    os.close(fd)
    assert path.parent == mine
    # acme's lock, which this process may not look at now, is kept: its file still waits
    assert files._OWNERS[held][0] == token
    assert (theirs.parent / "writers" / f"{token}{files.OWNER_SUFFIX}").is_file()
