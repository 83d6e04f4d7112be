"""Running a command on hostile input the way a user would, and checking nothing moved.

Each case runs ``stella`` or ``stella-mirror`` in a child process whose address space is capped
(``RLIMIT_AS``), so a regression that allocates what an input claims fails the case instead of
swapping the machine; the child's peak RSS is read back from ``wait4``. :func:`state` captures
what a user would look at before and after (snapshots, audit chain, images, doctor, leftover
temporary files) so a case can assert that a refusal changed none of it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

if TYPE_CHECKING:
    import pytest


class Identified(Protocol):
    """A case: anything with an ``id`` (its test's id)."""

    @property
    def id(self) -> str: ...


C = TypeVar("C", bound=Identified)
R = TypeVar("R")

REPO: Final = Path(__file__).resolve().parents[2]
#: The address-space ceiling of every hostile run (the interpreter and its libraries need
#: about 250 MiB of it before reading a byte).
AS_LIMIT: Final = 768 << 20
#: What the acceptance asks of peak RSS on any hostile input.
RSS_CEILING: Final = 512 << 20
_PROGRAMS: Final = {"stella": "appliance.cli", "stella-mirror": "mirror.cli"}
_TMP_SUFFIXES: Final = (".tmp", ".part", ".partial")


@dataclass(frozen=True, slots=True)
class Run:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str
    peak_rss: int  # bytes

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)} -> exit {self.code}, peak {self.peak_rss >> 20} MiB\n"
            f"stdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"
        )


def run(
    program: str,
    *args: str | os.PathLike[str],
    home: Path,
    env: dict[str, str] | None = None,
    as_limit: int = AS_LIMIT,
    timeout: float = 300,
    stdin: bytes = b"",
) -> Run:
    """``program --home HOME ARGS`` in a child capped at ``as_limit`` bytes of address space."""
    module = _PROGRAMS[program]
    argv = (program, "--home", str(home), *(os.fspath(a) for a in args))
    # The child reports its own high-water mark (VmHWM of the address space it exec'd into) as
    # it exits: the kernel's ru_maxrss also counts the pages of this process it was forked
    # from, which in a long test session would hide the child behind the parent's size.
    hwm = tempfile.NamedTemporaryFile(prefix="stella-hwm-", delete=False)  # noqa: SIM115
    hwm.close()
    # A scan's layers are read in a child of its own (a bounded scan job): its peak counts too.
    # Its ru_maxrss may include this process's size when it was spawned, which is at most this
    # process's own high-water mark, so the larger of the two is the true peak of either.
    code = (
        "import atexit, resource, sys\n"
        f"def _hwm(path={hwm.name!r}):\n"
        "    with open('/proc/self/status') as s, open(path, 'w') as out:\n"
        "        own = int(next(l.split()[1] for l in s if l.startswith('VmHWM:')))\n"
        "        jobs = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "        out.write(str(max(own, jobs)))\n"
        "atexit.register(_hwm)\n"
        f"sys.argv[0] = {program!r}\nfrom {module} import main\nmain()\n"
    )
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv[1:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
        preexec_fn=cap_memory,
    )
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for reader in readers:
        reader.start()
    assert proc.stdin is not None
    try:
        proc.stdin.write(stdin)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    return Run(
        argv,
        proc.returncode,
        chunks["out"].decode(errors="replace"),
        chunks["err"].decode(errors="replace"),
        _peak(hwm.name, usage.ru_maxrss),
    )


def _peak(hwm: str, ru_maxrss: int) -> int:
    """The child's own peak RSS in bytes; the kernel's figure (an upper bound) when the child
    died before it could say (killed, or out of memory)."""
    try:
        with open(hwm) as fh:
            text = fh.read().strip()
        return int(text) * 1024 if text else ru_maxrss * 1024
    finally:
        os.unlink(hwm)


def assert_refused(result: Run, message: str, *, code: int = 1) -> None:
    """One line on stderr, exactly ``message`` (a prefix is enough when it ends in '…'),
    the expected exit, no traceback, and within the memory ceiling."""
    assert "Traceback" not in result.err, result.describe()
    assert result.code == code, result.describe()
    lines = result.error_lines
    assert len(lines) == 1, result.describe()
    if message.endswith("…"):
        assert lines[0].startswith(message[:-1]), result.describe()
    else:
        assert lines[0] == message, result.describe()
    assert result.peak_rss <= RSS_CEILING, result.describe()


# One child runs every look of :func:`state` in turn, each as the command line would (click's
# runner, a fresh invocation each): one interpreter start instead of one per command.
_OBSERVE: Final = """
import json, sys
from click.testing import CliRunner
from appliance.cli import cli
home, looks = sys.argv[1], json.loads(sys.argv[2])
seen = []
for look in looks:
    result = CliRunner().invoke(cli, ["--home", home, "--json", *look])
    try:
        out = json.loads(result.stdout) if result.stdout else None
    except json.JSONDecodeError:
        out = result.stdout
    seen.append({"exit": result.exit_code, "out": out})
print(json.dumps(seen))
"""


def observe(home: Path, *looks: tuple[str, ...]) -> list[Any]:
    """``stella --json LOOK`` for each look, in one child process: ``{"exit", "out"}`` each."""
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", _OBSERVE, str(home), json.dumps(looks)],
        capture_output=True,
        env=child_env,
        timeout=300,
        check=True,
    )
    return list(json.loads(done.stdout))


_LOOKING: Final = threading.Lock()


def look(home: Path, *looks: tuple[str, ...]) -> list[Any]:
    """``stella --json LOOK`` for each look, run here through click's runner (a fresh
    invocation each, as the command line would run it): what :func:`observe` gives, without an
    interpreter start per call. Serialised, since the runner swaps this process's stdio."""
    from click.testing import CliRunner

    from appliance.cli import cli

    seen = []
    with _LOOKING:
        for args in looks:
            result = CliRunner().invoke(cli, ["--home", str(home), "--json", *args])
            try:
                out = json.loads(result.stdout) if result.stdout else None
            except json.JSONDecodeError:
                out = result.stdout
            seen.append({"exit": result.exit_code, "out": out})
    return seen


def leftovers(root: Path) -> list[str]:
    """Temporary files under ``root`` (what a crash or a refusal must not leave behind)."""
    if not root.exists():
        return []
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and (path.name.endswith(_TMP_SUFFIXES) or "tmp" in relative.parent.parts):
            found.append(str(relative))
    return sorted(found)


def state(home: Path, *, doctor: bool = False) -> dict[str, Any]:
    """What a user would look at on the appliance: equal before and after a refused input.
    With ``doctor``, also each ``stella doctor`` check's status (not its detail, which holds
    free space and such)."""
    looks: list[tuple[str, ...]] = [("snapshot", "list"), ("audit", "verify"), ("images", "list")]
    if doctor:
        looks.append(("doctor",))
    seen = look(home, *looks)
    found = {
        "snapshots": seen[0],
        "audit": seen[1],
        "images": seen[2],
        "leftovers": leftovers(home),
    }
    if doctor:
        checks = (seen[3]["out"] or {}).get("checks", [])
        found["doctor"] = {c["name"]: c["status"] for c in checks}
    return found


def play_selected(
    cases: Sequence[C], request: pytest.FixtureRequest, play: Callable[[C], R]
) -> dict[str, R]:
    """Every case of ``cases`` that the session selected (by its tests' ``case`` parameter),
    played once by ``play``, as many at once as there are cores; the outcomes by case id."""
    chosen = {
        getattr(item.callspec.params["case"], "id", None)  # other modules have their own cases
        for item in request.session.items
        if hasattr(item, "callspec") and "case" in item.callspec.params
    }
    wanted = [c for c in cases if c.id in chosen]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        played = pool.map(play, wanted)
        return {c.id: o for c, o in zip(wanted, played, strict=True)}
