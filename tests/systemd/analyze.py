"""Check the appliance's systemd units with systemd's own tools, without systemd as PID 1.

``systemd-analyze verify`` refuses a unit whose ``ExecStart`` binary is missing, and the units
name ``/usr/bin/stella`` (where the package installs it). The units are therefore copied to a
temporary directory with that path pointed at the ``stella`` of the running environment; nothing
else is changed. ``verify`` exits 0 even for unknown keys or bad values (it only warns), so any
output at all counts as a finding.

Run as a script (``python -m tests.systemd.analyze``), it prints every service's exposure score
from ``systemd-analyze security --offline=yes`` and exits 1 when ``verify`` reports anything or
a score is above :data:`MAX_EXPOSURE`: the CI step.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

UNIT_DIR: Final = Path(__file__).resolve().parent.parent.parent / "systemd"
INSTALLED_STELLA: Final = "/usr/bin/stella"
MAX_EXPOSURE: Final = 2.0
UNIT_SUFFIXES: Final = (".service", ".path", ".timer")
_OVERALL = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)")


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit file as systemd reads it: sections of (key, value) in order (keys repeat)."""

    path: Path
    sections: dict[str, list[tuple[str, str]]]

    @property
    def name(self) -> str:
        return self.path.name

    def values(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def value(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None

    @classmethod
    def load(cls, path: Path) -> Unit:
        sections: dict[str, list[tuple[str, str]]] = {}
        current: list[tuple[str, str]] | None = None
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
                continue
            if current is None or "=" not in line:
                raise ValueError(f"{path}:{number}: not a 'Key=value' line in a section: {raw!r}")
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
        return cls(path, sections)


def unit_files(directory: Path = UNIT_DIR) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in UNIT_SUFFIXES)


def exec_argv(unit: Unit) -> list[list[str]]:
    """Every ``ExecStart`` command line, split as systemd splits it (prefixes like ``-`` and
    ``@`` are not used by these units and would show up in argv[0])."""
    return [shlex.split(v) for v in unit.values("Service", "ExecStart")]


def stella_executable() -> Path:
    """The ``stella`` console script of the environment running this code."""
    return Path(sys.executable).parent / "stella"


def stage(target: Path, directory: Path = UNIT_DIR) -> list[Path]:
    """Copy the units into ``target`` with ExecStart pointed at this environment's stella."""
    staged = []
    for path in unit_files(directory):
        text = path.read_text(encoding="utf-8")
        out = target / path.name
        out.write_text(text.replace(INSTALLED_STELLA, str(stella_executable())), encoding="utf-8")
        staged.append(out)
    return staged


def verify(units: list[Path]) -> tuple[int, str]:
    """``systemd-analyze verify``: exit code and everything it printed."""
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    return run.returncode, (run.stdout + run.stderr).strip()


def exposure(unit: Path) -> tuple[float, str]:
    """``systemd-analyze security --offline=yes``: the overall exposure and its rating."""
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    m = _OVERALL.search(run.stdout + run.stderr)
    if m is None:
        raise RuntimeError(f"no exposure level in the output for {unit}: {run.stderr.strip()}")
    return float(m.group(1)), m.group(2)


def main() -> int:
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze not found (apt-get install systemd)", file=sys.stderr)
        return 1
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(Path(tmp))
        code, output = verify(staged)
        if code or output:
            print(f"systemd-analyze verify: exit {code}\n{output}")
            failed = True
        else:
            print(f"systemd-analyze verify: {len(staged)} units clean")
        for path in staged:
            if path.suffix != ".service":
                continue
            score, rating = exposure(path)
            over = score > MAX_EXPOSURE
            failed |= over
            print(f"{path.name:<24} exposure {score:.1f} {rating}{'  (over 2.0)' if over else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
