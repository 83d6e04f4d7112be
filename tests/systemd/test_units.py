"""The appliance's systemd units: systemd accepts them, they are hardened as the design asks,
and every command they run is a real ``stella`` command with options that exist."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from tests.conftest import require_tools
from tests.systemd.analyze import (
    INSTALLED_STELLA,
    MAX_EXPOSURE,
    UNIT_DIR,
    Unit,
    exec_argv,
    exposure,
    stage,
    unit_files,
    verify,
)
from tests.test_runbooks import check_command

UNITS = [Unit.load(p) for p in unit_files()]
SERVICES = [u for u in UNITS if u.name.endswith(".service")]
OFFLINE_SERVICES = [u for u in SERVICES if u.name != "stella-serve.service"]


def test_the_expected_units_are_there() -> None:
    names = {u.name for u in UNITS}
    assert {"stella-inbox.path", "stella-inbox.service", "stella-inbox.timer"} <= names
    assert {"stella-doctor.service", "stella-doctor.timer"} <= names


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    require_tools("systemd-analyze")
    code, output = verify(stage(tmp_path))
    assert (code, output) == (0, "")


def test_verify_reports_a_bad_unit(tmp_path: Path) -> None:
    """verify only warns about a bad key or value; the check above treats output as failure."""
    require_tools("systemd-analyze")
    staged = stage(tmp_path)
    service = tmp_path / "stella-inbox.service"
    service.write_text(
        service.read_text().replace("ProtectSystem=strict", "ProtectSystem=stricter")
        + "Frobnicate=yes\n"
    )
    _, output = verify(staged)
    assert "Failed to parse protect system value" in output
    assert "Unknown key 'Frobnicate'" in output


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_exposure_is_at_most_two(unit: Unit, tmp_path: Path) -> None:
    require_tools("systemd-analyze")
    staged = {p.name: p for p in stage(tmp_path)}
    score, rating = exposure(staged[unit.name])
    assert score <= MAX_EXPOSURE, f"{unit.name}: exposure {score} {rating}"
    assert rating in ("SAFE", "OK")


@pytest.mark.parametrize("unit", OFFLINE_SERVICES, ids=lambda u: u.name)
def test_services_are_hardened_and_offline(unit: Unit) -> None:
    def one(key: str) -> str | None:
        return unit.value("Service", key)

    assert one("User") == one("Group") == "stella"
    assert one("PrivateNetwork") == "yes"  # the air gap, enforced by the kernel
    assert one("IPAddressDeny") == "any"
    assert one("ProtectSystem") == "strict"
    assert one("ReadWritePaths") == "/var/lib/stella"
    assert one("NoNewPrivileges") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("CapabilityBoundingSet") == ""  # no capability at all
    assert unit.values("Service", "SystemCallFilter")[0] == "@system-service"
    assert one("MemoryMax") is not None
    assert one("CPUQuota") is not None
    assert unit.value("Unit", "ConditionPathExists") == "/var/lib/stella/.stella-home"


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_every_exec_start_is_a_real_stella_command(unit: Unit) -> None:
    commands = exec_argv(unit)
    assert commands, f"{unit.name} has no ExecStart"
    for argv in commands:
        assert argv[0] == INSTALLED_STELLA
        assert argv[1:3] == ["--home", "/var/lib/stella"]
        # The command path, every option (with its value) and the arguments, resolved through
        # click as for the commands the docs show (tests/test_runbooks.py).
        path = check_command(("stella", *argv[1:]))
        result = CliRunner().invoke(stella, [*argv[1:], "--help"])
        assert result.exit_code == 0, f"{unit.name}: {' '.join(argv)}: {result.output}"
        assert f"Usage: {path} " in result.output


def test_an_exec_start_with_a_made_up_option_would_be_caught() -> None:
    result = CliRunner().invoke(
        stella, ["--home", "/var/lib/stella", "inbox", "process", "--no-such-thing", "--help"]
    )
    assert result.exit_code == 2
    result = CliRunner().invoke(stella, ["--home", "/var/lib/stella", "rescan-all", "--help"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "unit", [u for u in UNITS if not u.name.endswith(".service")], ids=lambda u: u.name
)
def test_triggers_start_a_unit_that_exists(unit: Unit) -> None:
    section = "Path" if unit.name.endswith(".path") else "Timer"
    target = unit.value(section, "Unit")
    assert target is not None
    assert (UNIT_DIR / target).is_file()


def test_the_inbox_is_watched_for_changes_not_for_being_non_empty() -> None:
    """A set waiting for its last part keeps the inbox non-empty: DirectoryNotEmpty would
    restart the service in a loop until systemd's trigger limit stops the path unit."""
    (path,) = [u for u in UNITS if u.name == "stella-inbox.path"]
    assert path.values("Path", "PathChanged") == ["/var/lib/stella/inbox"]
    assert path.values("Path", "DirectoryNotEmpty") == []


def test_sysusers_and_tmpfiles_create_the_user_and_a_private_home(tmp_path: Path) -> None:
    require_tools("systemd-sysusers", "systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    for tool, conf in (
        ("systemd-sysusers", "stella.sysusers.conf"),
        ("systemd-tmpfiles", "stella.tmpfiles.conf"),
    ):
        extra = ["--create"] if tool == "systemd-tmpfiles" else []
        run = subprocess.run(
            [tool, f"--root={tmp_path}", *extra, str(UNIT_DIR / conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
    users = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
    }
    uid = int(users["stella"][2])
    assert users["stella"][5] == "/var/lib/stella"
    for sub in ("", "inbox", "quarantine", "staging"):
        st = (tmp_path / "var" / "lib" / "stella" / sub).stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o700, uid)


def test_the_worker_template_stops_gracefully_and_keeps_the_air_gap() -> None:
    """One instance per core (stella-worker@1, @2, ...): SIGTERM lets the running job finish,
    a crash restarts it, and PostgreSQL is reached over its Unix socket only."""
    (unit,) = [u for u in UNITS if u.name == "stella-worker@.service"]
    assert exec_argv(unit) == [[INSTALLED_STELLA, "--home", "/var/lib/stella", "worker"]]
    assert unit.value("Service", "KillSignal") == "SIGTERM"
    assert unit.value("Service", "TimeoutStopSec") is not None
    assert unit.value("Service", "Restart") == "on-failure"
    assert unit.value("Service", "RestrictAddressFamilies") == "AF_UNIX"
    assert unit.value("Service", "EnvironmentFile") == "-/etc/stella/stella.env"
    assert unit.value("Install", "WantedBy") == "multi-user.target"
