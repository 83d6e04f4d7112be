"""Bounded scan jobs: a scan that reads an image's layers runs in a child process with
memory, CPU-time, file-size and open-file limits, at most N at once per home (docs/scale-out.md,
"Bounded scan jobs").

The parent opens the image (its index, manifest and config, each read within its cap) and
asks the layer cache for the image's whole result: a hit reads no layer and no untrusted byte,
so it is answered here. Otherwise it takes one of the home's scan slots (a file lock in
``locks/``; waiting up to ``wait_seconds``, then refusing) and starts ``python -m
appliance.scanner.jobchild`` with the request on its standard input. The child sets its own
rlimits before it imports the scanner, walks the layers, and writes one JSON document back:
the result in the layer cache's form, the layer records it walked, or which bound it passed.
The parent reads at most ``result_bytes`` of it, rebuilds the :class:`ScanResult` from its own
opened image (so the SBOM has the bytes an in-process scan gives), writes the cache, and
records the scan in the audit log. JSON, never pickle: a child that a hostile layer subverted
can send wrong data, not code.

Under systemd (``INVOCATION_ID`` set, or ``"systemd": "always"``), the child runs in a
transient scope made by ``systemd-run --scope`` with ``MemoryMax=`` and ``CPUQuota=``, which
bound the child and every walker process it forks together; the rlimits apply as well.

A bound passed raises :class:`ScanLimitError`, which names the bound, its value and how to
raise it; ``stella gate`` turns it into an INDETERMINATE verdict with
``RISK.UNKNOWN.SCAN_LIMIT``.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from appliance import tenancy
from appliance.home import Home
from appliance.scanner.cache import LayerCache, analyzers_key
from appliance.scanner.image import ImageRef, OpenedImage, open_image
from appliance.scanner.layers import LayerRecord
from appliance.scanner.pyfacts import valid_facts
from appliance.scanner.result import ScanResult
from appliance.scanner.service import (
    IMAGE_REGISTRY,
    cached_result,
    collection_paused,
    image_key,
    open_scan_cache,
    record_scan,
    result_from_cache,
)
from bundles import limits
from bundles.digest import Digest
from bundles.errors import StellaError, UsageError
from bundles.limits import Cap, Unit

MEMORY = limits.cap(
    "scanjob.memory_bytes",
    4 << 30,
    Unit.BYTES,
    "the address space of a scan's process (RLIMIT_AS; MemoryMax= under systemd)",
)
CPU_SECONDS = limits.cap(
    "scanjob.cpu_seconds", 900, Unit.COUNT, "the CPU seconds of a scan's process (RLIMIT_CPU)"
)
FILE_BYTES = limits.cap(
    "scanjob.file_bytes",
    4 << 30,
    Unit.BYTES,
    "a file a scan's process writes, such as a spooled large file (RLIMIT_FSIZE)",
)
OPEN_FILES = limits.cap(
    "scanjob.open_files",
    1024,
    Unit.COUNT,
    "the files a scan's process holds open at once (RLIMIT_NOFILE)",
)
RESULT_BYTES = limits.cap(
    "scanjob.result_bytes",
    512 << 20,
    Unit.BYTES,
    "the result a scan's process sends back (the scan's result and the layer records)",
)
WALL_SECONDS = limits.cap(
    "scanjob.wall_seconds",
    3600,
    Unit.COUNT,
    "the wall-clock seconds a scan's process may run (a scan blocked without using CPU)",
)
CONCURRENT = limits.cap(
    "scanjob.concurrent_scans",
    2,
    Unit.COUNT,
    "the scans running at once in one home (one tenant)",
)

SETTINGS_KEY: Final = "scanJob"
"""The object of ``config.json`` that holds a home's scan bounds (docs/scale-out.md)."""

LOCKS: Final = "locks"
EXIT_MEMORY: Final = 75
"""The child's exit status when it ran out of memory even to say so."""
_POLL: Final = 0.1
DEFAULT_WAIT: Final = 600.0
"""Seconds a scan waits for a free slot before it is refused."""
DEFAULT_CPU_QUOTA: Final = 100


class Bound(enum.StrEnum):
    """What a scan job is bounded by; each has its cap, its option and its setting."""

    MEMORY = "memory"
    CPU = "cpu"
    FILE_SIZE = "file-size"
    OPEN_FILES = "open-files"
    RESULT = "result-size"
    WALL = "wall-clock"

    @property
    def cap(self) -> Cap:
        return _BOUNDS[self].cap

    @property
    def option(self) -> str:
        """The command-line option and its metavar (``--scan-memory SIZE``)."""
        return _BOUNDS[self].option

    @property
    def setting(self) -> str:
        """The key under ``scanJob`` in the home's ``config.json``."""
        return _BOUNDS[self].setting

    @property
    def what(self) -> str:
        return _BOUNDS[self].what


@dataclass(frozen=True, slots=True)
class _BoundInfo:
    cap: Cap
    option: str
    setting: str
    what: str
    field: str  # of ScanBounds


_BOUNDS: Final = {
    Bound.MEMORY: _BoundInfo(MEMORY, "--scan-memory SIZE", "memoryBytes", "memory", "memory_bytes"),
    Bound.CPU: _BoundInfo(
        CPU_SECONDS, "--scan-cpu-seconds N", "cpuSeconds", "CPU-time", "cpu_seconds"
    ),
    Bound.FILE_SIZE: _BoundInfo(
        FILE_BYTES, "--scan-file-size SIZE", "fileBytes", "file-size", "file_bytes"
    ),
    Bound.OPEN_FILES: _BoundInfo(
        OPEN_FILES, "--scan-open-files N", "openFiles", "open-files", "open_files"
    ),
    Bound.RESULT: _BoundInfo(
        RESULT_BYTES, "--scan-result-size SIZE", "resultBytes", "result-size", "result_bytes"
    ),
    Bound.WALL: _BoundInfo(
        WALL_SECONDS, "--scan-wall-seconds N", "wallSeconds", "wall-clock", "wall_seconds"
    ),
}


class SystemdMode(enum.StrEnum):
    AUTO = "auto"  # a transient scope when running under systemd (INVOCATION_ID set)
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class ScanBounds:
    """The bounds of one scan job, as resolved: option, then ``STELLA_LIMIT_…``, then the
    home's ``config.json`` (``scanJob``), then the default."""

    memory_bytes: int = MEMORY.default
    cpu_seconds: int = CPU_SECONDS.default
    file_bytes: int = FILE_BYTES.default
    open_files: int = OPEN_FILES.default
    result_bytes: int = RESULT_BYTES.default
    wall_seconds: int = WALL_SECONDS.default
    concurrent: int = CONCURRENT.default
    wait_seconds: float = DEFAULT_WAIT
    systemd: SystemdMode = SystemdMode.AUTO
    cpu_quota: int = DEFAULT_CPU_QUOTA  # percent of one CPU, for CPUQuota= (systemd only)

    def value(self, bound: Bound) -> int:
        return int(getattr(self, _BOUNDS[bound].field))

    @classmethod
    def resolve(
        cls,
        home: Home | None,
        options: Mapping[Bound, int | None] | None = None,
        *,
        wait_seconds: float | None = None,
    ) -> ScanBounds:
        """The bounds in force for a scan in ``home`` (``options``: the command line's)."""
        settings = _settings(home)
        values: dict[str, Any] = {}
        for bound in Bound:
            given = (options or {}).get(bound)
            values[_BOUNDS[bound].field] = (
                given if given is not None else _configured(bound.cap, settings, bound.setting)
            )
        values["concurrent"] = _configured(CONCURRENT, settings, "concurrentScans")
        wait = settings.get("waitSeconds", DEFAULT_WAIT) if wait_seconds is None else wait_seconds
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
            raise UsageError(
                f"scanJob.waitSeconds {wait!r} in the home's config.json is not a number of "
                "seconds",
                hint="give 0 (refuse when every slot is busy) or more",
            )
        from_env = os.environ.get("STELLA_SCANJOB_SYSTEMD")
        mode = from_env or settings.get("systemd", "auto")
        try:
            systemd = SystemdMode(mode)
        except ValueError:
            where = "STELLA_SCANJOB_SYSTEMD" if from_env else "scanJob.systemd"
            raise UsageError(
                f"{where} {mode!r} is not one of auto, always, never",
                hint="set it in the home's config.json or STELLA_SCANJOB_SYSTEMD",
            ) from None
        quota = settings.get("cpuQuotaPercent", DEFAULT_CPU_QUOTA)
        if isinstance(quota, bool) or not isinstance(quota, int) or quota <= 0:
            raise UsageError(
                f"scanJob.cpuQuotaPercent {quota!r} in the home's config.json is not a "
                "positive whole number",
                hint="100 is one CPU, 200 two",
            )
        return cls(**values, wait_seconds=float(wait), systemd=systemd, cpu_quota=quota)

    def rlimits(self) -> dict[str, int]:
        """What the child sets on itself (names of :mod:`resource`)."""
        return {
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
        }


def _settings(home: Home | None) -> Mapping[str, Any]:
    if home is None or not home.config.is_file():
        return {}
    found = home.settings().get(SETTINGS_KEY, {})
    if not isinstance(found, dict):
        raise UsageError(
            f"{SETTINGS_KEY} in {home.config} is not an object",
            hint='write it as {"scanJob": {"memoryBytes": "4G", ...}} (docs/scale-out.md)',
        )
    return found


def _configured(c: Cap, settings: Mapping[str, Any], key: str) -> int:
    """The environment's value of ``c``, else the home's setting, else the default."""
    if os.environ.get(c.env, "").strip():
        return c.value()
    if key not in settings:
        return c.default
    raw = settings[key]
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise UsageError(
            f"{SETTINGS_KEY}.{key} {raw!r} in the home's config.json is not a {c.unit.value}",
            hint="give a positive whole number"
            + (", optionally with K, M, G or T" if c.unit is Unit.BYTES else ""),
        )
    try:
        return limits.parse_amount(str(raw), c)
    except UsageError as e:
        raise UsageError(
            f"{SETTINGS_KEY}.{key} {raw!r} in the home's config.json is not a valid "
            f"{c.unit.value} bound",
            hint=e.hint,
        ) from e


def parse_option(bound: Bound, text: str) -> int:
    """An option's value (``--scan-memory 2G``), in the cap's units."""
    try:
        return limits.parse_amount(text, bound.cap)
    except UsageError as e:
        raise UsageError(
            f"{bound.option.split()[0]} {text!r} is not a valid {bound.cap.unit.value} bound",
            hint=e.hint,
        ) from e


# ---------------------------------------------------------------- refusals


@dataclass(frozen=True, slots=True)
class StoppedScan:
    """An image whose scan passed a bound: what the verdict binds to, and which bound."""

    ref: str
    name: str
    tag: str | None
    manifest_digest: Digest | None
    index_digest: Digest | None
    platform: str | None
    bound: Bound
    limit: int

    @property
    def reason(self) -> str:
        """What the verdict says (stable for the same bound and value, so replay matches)."""
        return (
            f"the scan was stopped by its {self.bound.what} bound of "
            f"{describe(self.bound, self.limit)} ({self.bound.cap.name}): the image's "
            "packages are unknown"
        )

    def to_dict(self) -> dict[str, Any]:
        """What the policy input says of it (``scanLimit``, docs/policy.md)."""
        return {
            "bound": self.bound.value,
            "cap": self.bound.cap.name,
            "limit": self.limit,
            "message": self.reason,
        }


def describe(bound: Bound, value: int) -> str:
    """A bound's value for a person: ``4 GiB``, ``900 s``, ``1,024``."""
    text = bound.cap.describe(value)
    return f"{text} s" if bound in (Bound.CPU, Bound.WALL) else text


class ScanJobError(StellaError):
    """A scan job could not run or ended without a result."""


class ScanLimitError(ScanJobError):
    """The scan passed one of its bounds and was stopped."""

    def __init__(self, stopped: StoppedScan, home: Home | None) -> None:
        bound = stopped.bound
        where = f"{home.config}" if home is not None else "the home's config.json"
        super().__init__(
            f"scan of {stopped.ref} stopped: it passed its {bound.what} bound of "
            f"{describe(bound, stopped.limit)} ({bound.cap.name})",
            hint=f"if the image is trusted and needs more, raise the bound with "
            f"{bound.option}, {bound.cap.env}=N or "
            f'"{SETTINGS_KEY}": {{"{bound.setting}": N}} in {where} (docs/limits.md)',
        )
        self.stopped = stopped


class ScanBusyError(ScanJobError):
    """Every scan slot of the home stayed busy for as long as the scan would wait."""


# ---------------------------------------------------------------- the home's scan slots


@contextmanager
def scan_slot(home: Home | None, bounds: ScanBounds) -> Iterator[int | None]:
    """Hold one of the home's ``concurrent`` scan slots (``locks/scan-N.lock``, an exclusive
    ``flock``) for the ``with`` body; wait up to ``wait_seconds`` for one, then refuse. A slot
    is released when its holder ends, however it ends. A home not initialised (``stella scan``
    before ``stella init``, one user's own scans) has no slots."""
    if home is None or not home.initialized:
        yield None
        return
    locks = home.root / LOCKS
    try:
        locks.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise ScanJobError(
            f"{locks}: cannot make the home's scan-slot directory: {e.strerror or e}",
            hint="the home must be writable by the user that scans",
        ) from e
    deadline = time.monotonic() + bounds.wait_seconds
    while True:
        for slot in range(bounds.concurrent):
            fd = _open_slot(locks / f"scan-{slot}.lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield slot
            finally:
                os.close(fd)  # closing the only descriptor releases the lock
            return
        if time.monotonic() >= deadline:
            raise ScanBusyError(
                f"all {bounds.concurrent} scan slots of the home {home.root} are in use"
                + (f" (waited {bounds.wait_seconds:g} s)" if bounds.wait_seconds else ""),
                hint="try again when a scan has finished, or raise "
                f"{CONCURRENT.name} ({CONCURRENT.env}=N, or "
                f'"{SETTINGS_KEY}": {{"concurrentScans": N}} in config.json) or '
                '"waitSeconds"',
            )
        time.sleep(_POLL)


def _open_slot(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ScanJobError(
            f"{path}: cannot open the scan slot: {e.strerror or e}",
            hint="the home must be writable by the user that scans",
        ) from e


# ---------------------------------------------------------------- the child process


def child_argv(module: str = "appliance.scanner.jobchild") -> list[str]:
    """A child's command (a scan's, by default): this interpreter running ``module``, isolated
    from the user's site packages but with the same module path (``-s``; PYTHONPATH passes
    through the environment)."""
    return [sys.executable, "-s", "-m", module]


def under_systemd(
    bounds: ScanBounds,
    environ: Mapping[str, str] = os.environ,
    *,
    root: bool | None = None,
    booted: bool | None = None,
) -> bool:
    """Whether the child runs in a transient scope. ``auto``: when stella runs as a systemd
    unit (``INVOCATION_ID``), as root (only root may ask the system manager for a scope
    without a polkit rule), with systemd running and ``systemd-run`` installed. The shipped
    units run as the ``stella`` user and bound the whole service with their own
    ``MemoryMax=``/``CPUQuota=``; there each scan has its rlimits."""
    if bounds.systemd is SystemdMode.NEVER:
        return False
    if bounds.systemd is SystemdMode.ALWAYS:
        return True
    root = os.geteuid() == 0 if root is None else root
    booted = Path("/run/systemd/system").is_dir() if booted is None else booted
    return (
        bool(environ.get("INVOCATION_ID"))
        and root
        and booted
        and shutil.which("systemd-run") is not None
    )


def systemd_command(argv: list[str], bounds: ScanBounds, unit: str) -> list[str]:
    """``argv`` inside a transient scope whose cgroup bounds the child and every process it
    forks together (``systemd-run --scope``; the scope ends with the child)."""
    return [
        "systemd-run",
        "--scope",
        "--quiet",
        "--collect",
        f"--unit={unit}",
        f"--property=MemoryMax={bounds.memory_bytes}",
        "--property=MemorySwapMax=0",
        f"--property=CPUQuota={bounds.cpu_quota}%",
        "--property=TasksMax=256",
        "--",
        *argv,
    ]


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """How the child ended: its document (None when it sent none or too much), its wait
    status, its CPU seconds, and whether the parent stopped it (and why)."""

    document: dict[str, Any] | None
    status: int
    cpu: float
    stopped: Bound | None = None
    stderr: str = ""
    systemd: bool = False  # the child ran in a systemd scope


def run_child(
    request: Mapping[str, Any],
    bounds: ScanBounds,
    *,
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ChildOutcome:
    """Start the child, give it ``request``, read its answer within the result-size and
    wall-clock bounds, and reap it (its CPU time from ``wait4``)."""
    command = argv or child_argv()
    scoped = under_systemd(bounds)
    if scoped:
        command = systemd_command(command, bounds, f"stella-scan-{uuid.uuid4().hex[:12]}")
    env = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            close_fds=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(json.dumps(dict(request)).encode())
            process.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once; its status says why
        data, stopped = _read_answer(process.stdout, bounds)
        if stopped is not None:
            # not process.kill(): it polls first, and would reap a child that had just ended,
            # leaving wait4 below nothing to read (ECHILD). Unreaped, the pid is still ours.
            os.kill(process.pid, signal.SIGKILL)
        process.stdout.close()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read(8192).decode("utf-8", "replace")
    document = None
    if stopped is None:
        try:
            parsed = json.loads(data) if data else None
        except (ValueError, RecursionError):
            parsed = None
        document = parsed if isinstance(parsed, dict) else None
    return ChildOutcome(document, status, usage.ru_utime + usage.ru_stime, stopped, tail, scoped)


def _read_answer(stream: Any, bounds: ScanBounds) -> tuple[bytes, Bound | None]:
    """The child's standard output, to its end: at most ``result_bytes``, within
    ``wall_seconds``; otherwise which bound it passed."""
    chunks: list[bytes] = []
    total = 0
    deadline = time.monotonic() + bounds.wall_seconds
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                return b"", Bound.WALL
            chunk = os.read(stream.fileno(), 1 << 20)
            if not chunk:
                return b"".join(chunks), None
            total += len(chunk)
            if total > bounds.result_bytes:
                return b"", Bound.RESULT
            chunks.append(chunk)


def bound_of(outcome: ChildOutcome, bounds: ScanBounds) -> Bound | None:
    """Which bound ended the child, from its answer or, when it gave none, from how it died."""
    if outcome.stopped is not None:
        return outcome.stopped
    doc = outcome.document
    if doc is not None and doc.get("status") == "limit":
        try:
            return Bound(str(doc.get("bound")))
        except ValueError:
            return None
    if doc is not None:
        return None
    if os.WIFEXITED(outcome.status) and os.WEXITSTATUS(outcome.status) == EXIT_MEMORY:
        return Bound.MEMORY
    if os.WIFSIGNALED(outcome.status):
        sig = os.WTERMSIG(outcome.status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.cpu >= bounds.cpu_seconds):
            return Bound.CPU
        if sig == signal.SIGKILL and outcome.systemd:
            return Bound.MEMORY  # the scope's MemoryMax=: the kernel kills inside the cgroup
        if sig == signal.SIGXFSZ:
            return Bound.FILE_SIZE
    return None


# ---------------------------------------------------------------- the scan


def scan_bounded(
    home: Home | None,
    ref: str,
    *,
    platform: str | None = None,
    cache: bool | Path | LayerCache = True,
    bounds: ScanBounds | None = None,
    audit: bool = True,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ScanResult:
    """:func:`~appliance.scanner.service.scan_image`, with the layers read in a bounded
    child process (see the module docstring); the same result, byte for byte."""
    bounds = bounds if bounds is not None else ScanBounds.resolve(home)
    registry = IMAGE_REGISTRY
    image = open_image(
        ImageRef.parse(ref), store=home.oci if home is not None else None, platform=platform
    )
    opened = open_scan_cache(home, cache) if image.rootfs is None else None
    try:
        result = None
        if opened is not None:
            with collection_paused():
                result = cached_result(image, registry, opened)
        if result is None:
            request = {
                "ref": ref,
                "home": str(home.root) if home is not None else None,
                "platform": platform,
                # what the parent opened: the child scans that image or refuses (a tag moved)
                "manifest": str(image.manifest_digest) if image.manifest_digest else None,
                "config": str(image.config_digest) if image.config_digest else None,
                "cache": opened.db.where if opened is not None else None,  # always a file
                "analyzers": list(registry.names()),
                "rlimits": bounds.rlimits(),
                # a fresh interpreter is behind no boundary: the child confines itself to the
                # one this process is behind (a tenant's), before it opens anything
                "boundary": boundary_request(tenancy.current()),
            }
            with scan_slot(home, bounds):
                outcome = run_child(request, bounds)
            result = _result_of(outcome, image, bounds, home)
            if opened is not None:
                _store(opened, image, outcome.document or {})
    finally:
        if opened is not None and opened is not cache:
            opened.close()
    if audit and home is not None and home.initialized:
        record_scan(home, result, now())
    return result


def ended(code: int) -> str:
    """How a child process ended, from its exit code as ``subprocess`` gives it (a signal as
    its negative number): "killed by signal SIGKILL", "exit status 3"."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def last_line(text: str) -> str:
    """The last line a child wrote to its error output (what it died saying), or ""."""
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def stopped_scan(image: OpenedImage, bound: Bound, limit: int) -> StoppedScan:
    return StoppedScan(
        ref=str(image.ref),
        name=image.name,
        tag=image.tag,
        manifest_digest=image.manifest_digest,
        index_digest=image.index_digest,
        platform=str(image.platform) if image.platform else None,
        bound=bound,
        limit=limit,
    )


def _result_of(
    outcome: ChildOutcome, image: OpenedImage, bounds: ScanBounds, home: Home | None
) -> ScanResult:
    bound = bound_of(outcome, bounds)
    if bound is not None:
        raise ScanLimitError(stopped_scan(image, bound, bounds.value(bound)), home)
    doc = outcome.document
    if doc is None:
        how = ended(os.waitstatus_to_exitcode(outcome.status))
        last = last_line(outcome.stderr) or "no message"
        raise ScanJobError(
            f"the scan of {image.ref} ended without a result ({how}): {last}",
            hint='systemd-run could not make the scan\'s scope: set "systemd": "never" under '
            f'"{SETTINGS_KEY}" in config.json, or STELLA_SCANJOB_SYSTEMD=never'
            if outcome.systemd
            else "run the scan again; report it if it recurs",
        )
    if doc.get("status") == "error":
        error = ScanJobError(str(doc.get("message", "the scan failed")), hint=doc.get("hint"))
        code = doc.get("exitCode")
        error.exit_code = code if isinstance(code, int) and code in (1, 2) else 1
        raise error
    try:
        hits = tuple(Digest.parse(d) for d in doc["hits"])
        with collection_paused():
            return result_from_cache(image, IMAGE_REGISTRY, doc["result"], cached=hits)
    except (KeyError, TypeError, ValueError, StellaError) as e:
        raise ScanJobError(
            f"the scan of {image.ref} sent back a result that cannot be read: {e}",
            hint="run the scan again; report it if it recurs",
        ) from e


def _store(cache: LayerCache, image: OpenedImage, doc: Mapping[str, Any]) -> None:
    """Write what the child walked into the cache (the child itself writes nothing of the
    home): each new layer record, the facts of the Python files it parsed (named with their
    layer and text digest; the facts are the result's own, each checked for its shape), then
    the image's row."""
    key = analyzers_key(IMAGE_REGISTRY)
    layers = doc.get("layers", {})
    for layer in image.layers:
        raw = layers.get(str(layer.digest))
        if raw is not None:
            cache.put(layer.digest, key, LayerRecord.from_dict(raw))
    digests = {str(layer.digest): layer.digest for layer in image.layers}
    python = doc["result"].get("python") or {}
    read = python.get("facts", {}) if isinstance(python, dict) else {}
    parsed = doc.get("facts", [])
    cache.put_facts(
        key,
        [
            (digests[item[0]], item[1], item[2], read[item[1]])
            for item in (parsed if isinstance(parsed, list) and isinstance(read, dict) else [])
            if isinstance(item, list)
            and len(item) == 3
            and item[0] in digests
            and isinstance(item[1], str)
            and isinstance(item[2], str)
            and valid_facts(read.get(item[1]))
        ],
    )
    cache.put_image(image_key(image, IMAGE_REGISTRY), key, doc["result"])


def boundary_request(boundary: tenancy.Boundary | None) -> dict[str, str | None] | None:
    """The boundary a child process (a scan's, a rescan's worker) confines itself to, as it
    is sent to it (None: none; appliance.scanner.jobchild.confine reads it)."""
    if boundary is None:
        return None
    return {"base": str(boundary.base), "tenant": boundary.tenant}
