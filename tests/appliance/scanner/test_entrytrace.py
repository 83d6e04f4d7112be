"""Entry trace: PATH and symlink resolution inside the root, owners, shell exec, Python
imports through site-packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.scanner.entrytrace import StepKind, python_imports
from appliance.scanner.result import ScanResult
from appliance.scanner.service import scan_image
from tests.appliance.scanner.layouts import OS_RELEASE, F, build_image, d, dist_info, sym

SITE = "usr/local/lib/python3.11/dist-packages"
STATUS = b"""Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6

Package: dash
Status: install ok installed
Architecture: amd64
Version: 0.5.12-2
"""


def base_layer() -> list[F]:
    return [
        F("etc/os-release", OS_RELEASE),
        F("var/lib/dpkg/status", STATUS),
        F("var/lib/dpkg/info/python3.11-minimal.list", b"/.\n/usr\n/usr/bin/python3.11\n"),
        F("var/lib/dpkg/info/dash.list", b"/.\n/bin\n/bin/dash\n"),
        d("usr/bin"),
        F("usr/bin/python3.11", b"\x7fELF not really", 0o755),
        sym("usr/bin/python3", "python3.11"),
        F("usr/bin/dash", b"\x7fELF", 0o755),
        sym("bin", "usr/bin"),  # usrmerge: dash lists /bin/dash
        sym("usr/bin/sh", "/bin/dash"),
        d("usr/lib/python3.11"),
        F("usr/lib/python3.11/os.py", b""),
        F("usr/lib/python3.11/json/__init__.py", b""),
    ]


def app_layer(main: bytes) -> list[F]:
    return [
        *dist_info("requests", "2.19.0", SITE, ["requests/__init__.py", "requests/api.py"]),
        F(f"{SITE}/requests/__init__.py", b"from . import api\nimport urllib3\n"),
        F(f"{SITE}/requests/api.py", b"from .models import x\nimport json\n"),
        *dist_info("urllib3", "1.24.1", SITE, ["urllib3/__init__.py"]),
        F(f"{SITE}/urllib3/__init__.py", b"import os\n"),
        *dist_info("django", "3.2.0", SITE, ["django/__init__.py"]),
        F(f"{SITE}/django/__init__.py", b"import urllib3\n"),
        F("app/main.py", main, 0o755),
        F("app/start.sh", b'#!/bin/sh\nset -e\nexec python3 /app/main.py "$@"\n', 0o755),
    ]


def scan(
    tmp_path: Path, config: dict[str, object], main: bytes = b"import requests\n"
) -> ScanResult:
    build_image(tmp_path / "l", [base_layer(), app_layer(main)], tag="t:1", config=config)
    return scan_image(None, f"oci:{tmp_path / 'l'}", cache=False)


def reachable_names(result: ScanResult) -> set[str]:
    return {r.purl.split("/")[-1].split("@")[0] for r in result.entry_trace.reachable}


ENV = ["PATH=/usr/local/bin:/usr/bin:/bin"]


def test_python_entrypoint_reaches_imported_distributions_only(tmp_path: Path) -> None:
    result = scan(
        tmp_path, {"Entrypoint": ["python3", "main.py"], "WorkingDir": "/app", "Env": ENV}
    )
    trace = result.entry_trace
    assert [s.kind for s in trace.steps] == [
        StepKind.ENTRYPOINT,
        StepKind.SYMLINK,
        StepKind.EXECUTABLE,
        StepKind.PYTHON_MAIN,
    ]
    executable = trace.steps[2]
    assert executable.path == "usr/bin/python3.11"
    assert executable.layer == 0
    assert executable.owner is not None
    assert "python3.11-minimal" in executable.owner
    assert reachable_names(result) == {"python3.11-minimal", "requests", "urllib3"}
    urllib3 = next(r for r in trace.reachable if "urllib3" in r.purl)
    assert urllib3.file == f"{SITE}/urllib3/__init__.py"
    assert urllib3.layer == 1
    assert urllib3.chain == (
        "usr/bin/python3",
        "usr/bin/python3.11",
        "app/main.py",
        f"{SITE}/requests/__init__.py",
        f"{SITE}/urllib3/__init__.py",
    )


def test_shell_script_exec_is_followed(tmp_path: Path) -> None:
    result = scan(tmp_path, {"Cmd": ["/app/start.sh"], "Env": ENV})
    kinds = [s.kind for s in result.entry_trace.steps]
    assert StepKind.SCRIPT in kinds
    assert StepKind.EXEC in kinds
    assert StepKind.PYTHON_MAIN in kinds
    assert {"dash", "requests", "urllib3"} <= reachable_names(result)


def test_shell_form_command(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        {"Cmd": ["/bin/sh", "-c", "exec python3 -u /app/main.py && echo done"], "Env": ENV},
        main=b"import django\n",
    )
    assert reachable_names(result) == {"dash", "python3.11-minimal", "django", "urllib3"}


def test_missing_executable_is_an_unknown(tmp_path: Path) -> None:
    result = scan(tmp_path, {"Entrypoint": ["node", "server.js"], "Env": ENV})
    assert [u.path for u in result.entry_trace.unknowns] == ["node"]
    assert result.entry_trace.reachable == ()


def test_no_command(tmp_path: Path) -> None:
    result = scan(tmp_path, {})
    assert "names no Entrypoint or Cmd" in result.entry_trace.unknowns[0].reason


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os, sys as system\n", ("os", "sys")),
        ("from . import models\n", (".", ".models")),
        ("from ..compat import (a,\n  b)\n", ("..compat", "..compat.a", "..compat.b")),
        ("    import json.decoder  # indented\n", ("json.decoder",)),
        ("x = 'import nothing'\n", ()),
        ("from __future__ import annotations\n", ("__future__", "__future__.annotations")),
    ],
)
def test_python_imports(source: str, expected: tuple[str, ...]) -> None:
    assert python_imports(source) == expected
