"""A small Go program built with the machine's Go toolchain, offline and standard library
only: it links ``html/template.(*Template).Execute`` and nothing of ``net/http``, and
``encoding/pem.Decode`` only through a method its template could call."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from appliance.home import Home
from tests.appliance.scanner.layouts import F, build_image
from tests.conftest import require_tools

GO_DATA = Path(__file__).resolve().parent.parent / "data" / "go"
#: Go's build cache, shared by every build of the suite and kept between runs (Go's cache is
#: safe for concurrent use): the standard library is compiled once, not once per test module.
GO_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "go-build"


def build_hello(workdir: Path, goarch: str = "amd64") -> Path:
    """The program built for linux/``goarch`` (cross-compiled when that is not the machine's
    own: Go needs nothing more)."""
    require_tools("go")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GO_DATA / "hello.go", workdir / "hello.go")
    (workdir / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    env = {
        **os.environ,
        "GOCACHE": str(GO_CACHE),
        "GOPATH": str(workdir / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOOS": "linux",
        "GOARCH": goarch,
    }
    out = workdir / ("hello" if goarch == "amd64" else f"hello-{goarch}")
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(out), "."],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
    )
    return out


def hello_home(root: Path, hello: Path) -> Home:
    """A new home whose store holds ``hello:1``: the program at ``/usr/local/bin/hello``."""
    home = Home(root)
    home.init()
    build_image(
        home.oci,
        [[F("usr/local/bin/hello", hello.read_bytes(), mode=0o755)]],
        tag="hello:1",
        compression="none",
    )
    return home


def go_nm(binary: Path) -> list[str]:
    """The text symbols ``go tool nm`` lists for ``binary`` (its symbol table)."""
    lines = subprocess.run(
        ["go", "tool", "nm", str(binary)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    fields = [line.split() for line in lines]
    return [f[-1] for f in fields if len(f) >= 3 and f[-2] in ("T", "t")]
