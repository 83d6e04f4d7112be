"""The bounded scan job with real child processes: the same result as an in-process scan,
each rlimit enforced and named, the home's scan slots, the settings, and the systemd scope's
command line."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.scanner.cache import LayerCache
from appliance.scanner.jobs import (
    Bound,
    ScanBounds,
    ScanBusyError,
    ScanJobError,
    ScanLimitError,
    SystemdMode,
    bound_of,
    run_child,
    scan_bounded,
    scan_slot,
    systemd_command,
    under_systemd,
)
from appliance.scanner.service import scan_image
from bundles.errors import UsageError
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import (
    OS_RELEASE,
    STATUS_BASE,
    STATUS_UPPER,
    F,
    build_image,
    dist_info,
)

MiB = 1 << 20
LAYERS = [
    [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)],
    [F("var/lib/dpkg/status", STATUS_UPPER), *dist_info("requests", "2.19.0", SITE)],
    dist_info("urllib3", "1.26.5", SITE),
]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, LAYERS, tag="app:1")
    # a wanted file larger than the walker keeps in memory: it is spooled to a temporary file
    build_image(h.oci, [[F("opt/app/big.jar", bytes(40 * MiB))]], tag="big:1")
    return h


def stella(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_same_result_as_a_scan_in_process(home: Home, tmp_path: Path) -> None:
    inside = scan_image(home, "app:1", cache=False, audit=False)
    cold = scan_bounded(home, "app:1", cache=tmp_path / "c.db", audit=False)
    assert cold.sbom_bytes() == inside.sbom_bytes()
    assert cold == inside  # every field, not only the SBOM
    # the child walked; the parent wrote the cache: the next scan is a hit read here
    with LayerCache.open(tmp_path / "c.db") as cache:
        assert cache.count() == 3
    warm = scan_bounded(home, "app:1", cache=tmp_path / "c.db", audit=False)
    assert warm.sbom_bytes() == inside.sbom_bytes()
    assert len(warm.cached_layers) == 3
    # a second image sharing two layers: those two come from the cache, in the child
    build_image(home.oci, LAYERS[:2], tag="base:1")
    shared = scan_bounded(home, "base:1", cache=tmp_path / "c.db", audit=False)
    assert shared.sbom_bytes() == scan_image(home, "base:1", cache=False).sbom_bytes()
    assert len(shared.cached_layers) == 2


def test_a_root_file_system_in_a_child_too(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    for entry in LAYERS[0]:
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.data)
    inside = scan_image(None, f"dir:{root}", cache=False)
    bounded = scan_bounded(None, f"dir:{root}", bounds=ScanBounds(memory_bytes=512 * MiB))
    assert bounded.sbom_bytes() == inside.sbom_bytes()


def test_the_scan_is_audited_by_the_parent(home: Home) -> None:
    code, out, err = stella(home, "--json", "scan", "app:1", "--format", "packages")
    assert code == 0, err
    assert json.loads(out)["packages"] == 6
    code, out, _ = stella(home, "--json", "audit", "list")
    assert code == 0
    assert "scan" in out


def test_the_file_size_bound(home: Home) -> None:
    code, _, err = stella(home, "--json", "scan", "big:1", "--format", "packages")
    assert code == 0, err  # the default bound is far above 40 MiB
    code, _, err = stella(home, "scan", "big:1", "--no-cache", "--scan-file-size", "8M")
    assert code == 1
    assert err.startswith(
        "stella: error: scan of big:1 stopped: it passed its file-size bound of 8 MiB "
        "(scanjob.file_bytes) (if the image is trusted and needs more, raise the bound with "
        "--scan-file-size SIZE, STELLA_LIMIT_SCANJOB_FILE_BYTES=N"
    )


def test_the_open_files_bound(home: Home) -> None:
    code, _, err = stella(home, "scan", "app:1", "--no-cache", "--scan-open-files", "6")
    assert code == 1
    assert "it passed its open-files bound of 6 (scanjob.open_files)" in err
    code, _, err = stella(
        home, "scan", "app:1", "--no-cache", "--scan-open-files", "64", "--format", "packages"
    )
    assert code == 0, err


def test_the_result_size_bound(home: Home) -> None:
    with pytest.raises(ScanLimitError) as caught:
        scan_bounded(home, "app:1", cache=False, bounds=ScanBounds(result_bytes=1024))
    assert caught.value.stopped.bound is Bound.RESULT
    assert "result-size bound of 1 KiB (scanjob.result_bytes)" in caught.value.message


def test_a_cached_image_needs_no_child(home: Home, tmp_path: Path) -> None:
    cache = tmp_path / "c.db"
    scan_bounded(home, "app:1", cache=cache, audit=False)
    # a bound no child could live with: only a cache hit can answer
    hit = scan_bounded(home, "app:1", cache=cache, bounds=ScanBounds(open_files=3))
    assert len(hit.cached_layers) == 3
    with pytest.raises(ScanLimitError):
        scan_bounded(home, "app:1", cache=False, bounds=ScanBounds(open_files=3))


# ---------------------------------------------------------------- the home's slots


def test_a_busy_home_refuses_at_once_or_waits(home: Home) -> None:
    one = ScanBounds(concurrent=1, wait_seconds=0)
    home.write_settings({**home.settings(), "scanJob": {"concurrentScans": 1}})
    with scan_slot(home, one) as slot:
        assert slot == 0
        code, _, err = stella(home, "scan", "app:1", "--no-cache", "--scan-wait", "0")
        assert code == 1
        assert err.splitlines() == [
            f"stella: error: all 1 scan slots of the home {home.root} are in use (try again "
            "when a scan has finished, or raise scanjob.concurrent_scans "
            '(STELLA_LIMIT_SCANJOB_CONCURRENT_SCANS=N, or "scanJob": {"concurrentScans": N} '
            'in config.json) or "waitSeconds")'
        ]
        with pytest.raises(ScanBusyError), scan_slot(home, one):
            pass
        # a scan that may wait: started now, it finishes once the slot is free
        done: list[object] = []
        waiting = threading.Thread(
            target=lambda: done.append(
                scan_bounded(home, "app:1", cache=False, bounds=ScanBounds(concurrent=1))
            )
        )
        waiting.start()
    waiting.join(timeout=300)
    assert len(done) == 1
    # two slots: a second scan runs beside the first
    two = ScanBounds(concurrent=2, wait_seconds=0)
    with scan_slot(home, two) as first, scan_slot(home, two) as second:
        assert (first, second) == (0, 1)


def test_a_home_not_initialised_has_no_slots(tmp_path: Path) -> None:
    bare = Home(tmp_path / "bare")
    with scan_slot(bare, ScanBounds(concurrent=1)) as slot:
        assert slot is None
    assert not (bare.root / "locks").exists()


# ---------------------------------------------------------------- settings


def test_bounds_resolve_option_environment_home_default(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ScanBounds.resolve(home) == ScanBounds()
    home.write_settings(
        {
            **home.settings(),
            "scanJob": {"memoryBytes": "2G", "cpuSeconds": 60, "concurrentScans": 4},
        }
    )
    found = ScanBounds.resolve(home)
    assert (found.memory_bytes, found.cpu_seconds, found.concurrent) == (2 << 30, 60, 4)
    monkeypatch.setenv("STELLA_LIMIT_SCANJOB_MEMORY_BYTES", "1G")
    assert ScanBounds.resolve(home).memory_bytes == 1 << 30
    assert ScanBounds.resolve(home, {Bound.MEMORY: 3 << 30}).memory_bytes == 3 << 30


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"memoryBytes": "lots"}, "scanJob.memoryBytes 'lots' in the home's config.json is not"),
        ({"cpuSeconds": True}, "scanJob.cpuSeconds True in the home's config.json is not a count"),
        ({"waitSeconds": -1}, "scanJob.waitSeconds -1 in the home's config.json is not a number"),
        ({"systemd": "maybe"}, "scanJob.systemd 'maybe' is not one of auto, always, never"),
    ],
)
def test_bad_settings_are_refused_with_the_field(
    home: Home, settings: dict[str, object], message: str
) -> None:
    home.write_settings({**home.settings(), "scanJob": settings})
    with pytest.raises(UsageError) as caught:
        ScanBounds.resolve(home)
    assert caught.value.message.startswith(message)
    code, _, err = stella(home, "scan", "app:1")
    assert code == 2
    assert err.startswith("stella: error: " + message)


def test_a_bad_option_names_the_option(home: Home) -> None:
    code, _, err = stella(home, "scan", "app:1", "--scan-memory", "0")
    assert code == 2
    assert err.startswith("stella: error: --scan-memory '0' is not a valid bytes bound")


# ---------------------------------------------------------------- systemd


def test_the_systemd_scope_command_line() -> None:
    bounds = ScanBounds(memory_bytes=2 << 30, cpu_quota=150)
    assert systemd_command(["python", "-m", "x"], bounds, "stella-scan-1") == [
        "systemd-run",
        "--scope",
        "--quiet",
        "--collect",
        "--unit=stella-scan-1",
        f"--property=MemoryMax={2 << 30}",
        "--property=MemorySwapMax=0",
        "--property=CPUQuota=150%",
        "--property=TasksMax=256",
        "--",
        "python",
        "-m",
        "x",
    ]


def test_when_a_scope_is_used() -> None:
    auto = ScanBounds()
    unit = {"INVOCATION_ID": "abc"}
    assert not under_systemd(auto, {}, root=True, booted=True)
    has_run = shutil.which("systemd-run") is not None
    assert under_systemd(auto, unit, root=True, booted=True) is has_run
    # the shipped units run as the stella user: no scope, the unit bounds the service
    assert not under_systemd(auto, unit, root=False, booted=True)
    assert not under_systemd(auto, unit, root=True, booted=False)
    never = ScanBounds(systemd=SystemdMode.NEVER)
    assert not under_systemd(never, unit, root=True, booted=True)
    assert under_systemd(ScanBounds(systemd=SystemdMode.ALWAYS), {}, root=False, booted=False)


@pytest.mark.skipif(shutil.which("systemd-run") is None, reason="needs systemd-run")
def test_a_scope_that_cannot_be_made_is_one_clear_error(home: Home) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: the scope would be made")
    with pytest.raises(ScanJobError) as caught:
        scan_bounded(home, "app:1", cache=False, bounds=ScanBounds(systemd=SystemdMode.ALWAYS))
    assert caught.value.message.startswith("the scan of app:1 ended without a result (exit")
    assert caught.value.hint is not None
    assert "STELLA_SCANJOB_SYSTEMD=never" in caught.value.hint


def test_a_child_that_cannot_set_its_limits_does_not_scan(home: Home) -> None:
    # failure injection: setrlimit refused, as a seccomp filter without it would
    refusing = (
        "import errno, resource, runpy\n"
        "def refuse(*args):\n"
        "    raise OSError(errno.EPERM, 'Operation not permitted')\n"
        "resource.setrlimit = refuse\n"
        "runpy.run_module('appliance.scanner.jobchild', run_name='__main__')\n"
    )
    outcome = run_child(
        {
            "ref": "app:1",
            "home": str(home.root),
            "platform": None,
            "cache": None,
            "analyzers": ["dpkg"],
            "rlimits": ScanBounds().rlimits(),
        },
        ScanBounds(systemd=SystemdMode.NEVER),
        argv=[sys.executable, "-c", refusing],
    )
    assert outcome.document == {
        "status": "error",
        "message": "the scan's process cannot set its limits: [Errno 1] Operation not permitted",
        "hint": "allow setrlimit/prlimit64 to stella (a unit's SystemCallFilter=), or run the "
        "scan where it may",
        "exitCode": 1,
    }


@pytest.mark.parametrize(
    ("script", "bound"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGXCPU)", Bound.CPU),
        ("import os; os._exit(75)", Bound.MEMORY),  # out of memory even to say so
        (  # Python ignores SIGXFSZ; a child that did not would die of it
            "import os, signal; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
            "os.kill(os.getpid(), signal.SIGXFSZ)",
            Bound.FILE_SIZE,
        ),
        ("import sys; sys.stdout.write('x' * 4096)", Bound.RESULT),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", None),  # no bound explains
    ],
)
def test_how_a_child_ended_names_its_bound(script: str, bound: Bound | None) -> None:
    # failure injection: children that end as a bound (or nothing) would end them
    bounds = ScanBounds(result_bytes=1024, systemd=SystemdMode.NEVER)
    outcome = run_child({}, bounds, argv=[sys.executable, "-c", script])
    assert bound_of(outcome, bounds) is bound


def test_the_child_scans_the_image_the_parent_opened_or_refuses(home: Home) -> None:
    other = "sha256:" + "0" * 64
    outcome = run_child(
        {
            "ref": "app:1",
            "home": str(home.root),
            "platform": None,
            "manifest": other,  # as if app:1 had pointed there when the parent opened it
            "config": None,
            "cache": None,
            "analyzers": ["dpkg"],
            "rlimits": ScanBounds().rlimits(),
        },
        ScanBounds(systemd=SystemdMode.NEVER),
    )
    assert outcome.document is not None
    assert outcome.document["status"] == "error"
    assert outcome.document["message"].startswith(
        "app:1 names another image than when the scan began (manifest sha256:"
    )
    assert outcome.document["message"].endswith(f"expected {other})")
