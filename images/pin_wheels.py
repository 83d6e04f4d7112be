"""Pin the appliance image's wheels: the closure of ``pyproject.toml``'s ``[project]``
dependencies at the versions installed where this runs (the versions the tests ran with),
each pinned by the SHA-256 of the published wheel for the image's platform.

    python images/pin_wheels.py            # list what the recipe would pin, and the drift
    python images/pin_wheels.py --write    # download the wheels once and rewrite the recipe

Run it with the project's virtual environment after a dependency change; it needs the package
index once (``pip download``), as the image build itself does. The recipe's ``packages`` list
is rewritten in place; everything else in the file is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Final

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT: Final = Path(__file__).resolve().parent.parent
RECIPE: Final = ROOT / "images" / "recipes" / "appliance.toml"
#: The image's interpreter and platform (the recipe's python layer says the same).
ENVIRONMENT: Final[dict[str, str]] = {
    **{k: str(v) for k, v in default_environment().items()},
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
PLATFORMS: Final = ("manylinux_2_34_x86_64", "manylinux2014_x86_64")
#: Installed into the image besides the closure: the recipe's builder installs with it.
ALSO: Final = ("pip",)


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``req``, required by a distribution installed with ``extras``, is installed."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**ENVIRONMENT, "extra": extra}) for extra in (extras or {""}))


def closure(requirements: list[str]) -> dict[str, str]:
    """Canonical name → installed version of every distribution the requirements pull in."""
    pending = [r for r in map(Requirement, requirements) if _applies(r, frozenset())]
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        extras = frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"pin_wheels: {name} is not installed; run 'make venv' first")
        found[name] = dist.version
        pending += [r for r in map(Requirement, dist.requires or ()) if _applies(r, extras)]
    return found


def wanted() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = closure(list(project["dependencies"]))
    for name in ALSO:
        pins[canonicalize_name(name)] = metadata.version(name)
    return dict(sorted(pins.items()))


def recipe_pins() -> dict[str, str]:
    recipe = tomllib.loads(RECIPE.read_text())
    layer = next(layer for layer in recipe["layer"] if layer["kind"] == "python")
    return {canonicalize_name(p["name"]): p["version"] for p in layer["packages"]}


def wheel_hashes(pins: dict[str, str]) -> dict[str, str]:
    """Download each pinned wheel for the image's platform and hash it."""
    hashes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in pins.items():
            out = Path(tmp) / name
            args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(out)]
            # opa-golib-python-bindings declares Python >=3.14 but is py3-none (see the recipe)
            args.append("--ignore-requires-python")
            args += ["--only-binary=:all:", "--python-version", "3.11"]
            args += ["--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
            for platform in (*PLATFORMS, "any"):
                args += ["--platform", platform]
            subprocess.run([*args, f"{name}=={version}"], check=True)
            (wheel,) = out.glob("*.whl")
            hashes[name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return hashes


def rewrite(pins: dict[str, str], hashes: dict[str, str]) -> None:
    text = RECIPE.read_text()
    lines = [
        f'  {{ name = "{n}", version = "{v}", sha256 = "{hashes[n]}" }},' for n, v in pins.items()
    ]
    new, count = re.subn(
        r"(?ms)^packages = \[\n.*?^\]\n", "packages = [\n" + "\n".join(lines) + "\n]\n", text
    )
    if count != 1:
        sys.exit(f"pin_wheels: {RECIPE}: cannot find the one python 'packages' list")
    RECIPE.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="download, hash, rewrite")
    args = parser.parse_args(argv)
    want, have = wanted(), recipe_pins()
    for name in sorted(want.keys() | have.keys()):
        if want.get(name) != have.get(name):
            print(f"{name}: recipe {have.get(name, '-')} -> {want.get(name, '-')}")
    if args.write:
        rewrite(want, wheel_hashes(want))
        print(f"{RECIPE.relative_to(ROOT)}: {len(want)} wheels pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
