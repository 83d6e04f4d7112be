"""The inbox: bundles dropped into ``$STELLA_HOME/inbox`` are imported unattended.

One pass (``stella inbox process``, run by ``stella-inbox.service``):

1. **Scan.** Every regular file is classified. Dot files, ``*.tmp`` and this module's own
   ``*.waiting`` status files are ignored. A file changed (mtime or ctime) less than ``settle``
   seconds ago is *settling*: still being copied, left for later. A ``*.stella.tar.zst`` file
   is a bundle; a file that starts with the part magic is a part, grouped with the other parts
   of its bundle by the bundle digest its parts manifest names; ``NAME.parts.json`` travels with
   bundle ``NAME``. Anything else is *other*: reported, never touched. A file the appliance
   user cannot read (copied in by root, mode 0600) is reported as *unreadable* and left, so it
   cannot block the bundles after it.
2. **Order.** Complete bundles are imported by the sequence number their (unverified) statement
   states, then oldest first, then by name: a full bundle and the deltas after it, dropped
   together, import in the order the anti-rollback rule needs. The peeked sequence only orders;
   the importer verifies everything.
3. **Import, one at a time.** The whole pass holds an exclusive ``flock`` on
   ``staging/import.lock``; a second pass waits for it (or, asked not to wait, exits saying so).
   An imported bundle's files leave the inbox: they are deleted (the audit record keeps the
   bundle digest, the knowledge store keeps every byte of the snapshot) or, with
   ``keep_imported``, moved to ``imported/``. A refused bundle is moved to ``quarantine/`` with
   a reason file by the importer itself.
4. **Waiting sets.** An incomplete set of parts stays; ``NAME.waiting`` beside it names the
   missing parts. It is rewritten only when its text changes, so a pass does not trigger the
   path unit that started it again and again.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from appliance.home import Home
from appliance.intake.importer import Importer, ImportRefusedError
from bundles.archive import ArchiveReader
from bundles.bounded import printable
from bundles.bundle import STATEMENT_MEMBER, peek_statement
from bundles.errors import StellaError
from bundles.files import atomic_write
from bundles.parts import PartsIncompleteError, is_part, part_name, peek_manifest, read_header

BUNDLE_SUFFIX: Final = ".stella.tar.zst"
MANIFEST_SUFFIX: Final = ".parts.json"
WAITING_SUFFIX: Final = ".waiting"
LOCK_NAME: Final = "import.lock"
IMPORTED_DIR: Final = "imported"
DEFAULT_SETTLE: Final = 30.0
"""Seconds a file must stay unchanged before it counts as completely copied. Longer than the
pauses of a slow USB copy; a copy that stalls for longer is imported truncated, refused and
quarantined, and its reason file says so."""

_PART_INDEX = re.compile(r"\.part-(\d{3,})-of-(\d{3,})$")


class Disposal(StrEnum):
    """What happened to a bundle's files after its import."""

    DELETED = "deleted"
    KEPT = "kept"  # moved to imported/


@dataclass(frozen=True, slots=True)
class InboxBundle:
    """One bundle in the inbox: a bundle file, or the parts of a split bundle found so far.

    ``sequence`` and ``channel`` are read from the unverified statement, only to order
    imports; ``None`` when they could not be read (the import will say why)."""

    name: str
    files: tuple[Path, ...]
    count: int
    missing: tuple[str, ...] = ()
    sequence: int | None = None
    channel: str | None = None
    oldest: float = 0.0
    companions: tuple[Path, ...] = ()

    @property
    def split(self) -> bool:
        return any(is_part(p) for p in self.files)

    @property
    def complete(self) -> bool:
        return not self.missing

    def waiting_text(self) -> str:
        have = self.count - len(self.missing)
        return (
            f"{printable(self.name)}: {have} of {self.count} parts here, waiting for "
            f"{len(self.missing)}: {', '.join(self.missing)}\n"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": printable(self.name),
            "files": [printable(p.name) for p in self.files],
            "parts": self.count if self.split else None,
            "missing": list(self.missing),
            "sequence": self.sequence,
            "channel": self.channel,
        }


@dataclass(frozen=True, slots=True)
class InboxScan:
    """What the inbox holds now. ``ready`` is in import order."""

    ready: tuple[InboxBundle, ...]
    waiting: tuple[InboxBundle, ...]
    settling: tuple[Path, ...]
    other: tuple[Path, ...]
    unreadable: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": [b.to_dict() for b in self.ready],
            "waiting": [b.to_dict() for b in self.waiting],
            "settling": [printable(p.name) for p in self.settling],
            "other": [printable(p.name) for p in self.other],
            "unreadable": [printable(p.name) for p in self.unreadable],
        }


@dataclass(frozen=True, slots=True)
class Imported:
    bundle: InboxBundle
    digest: str
    sequence: int
    channel: str
    snapshot: str | None
    disposal: Disposal

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": printable(self.bundle.name),
            "files": [printable(p.name) for p in self.bundle.files],
            "digest": self.digest,
            "sequence": self.sequence,
            "channel": self.channel,
            "snapshot": self.snapshot,
            "disposal": str(self.disposal),
        }


@dataclass(frozen=True, slots=True)
class Refused:
    bundle: InboxBundle
    reason: str
    quarantine: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": printable(self.bundle.name),
            "files": [printable(p.name) for p in self.bundle.files],
            "reason": self.reason,
            "quarantine": printable(str(self.quarantine)) if self.quarantine else None,
        }


@dataclass(slots=True)
class InboxReport:
    """The outcome of one :meth:`InboxProcessor.process` call."""

    busy: bool = False
    imported: list[Imported] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    waiting: tuple[InboxBundle, ...] = ()
    settling: tuple[Path, ...] = ()
    other: tuple[Path, ...] = ()
    unreadable: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "busy": self.busy,
            "imported": [i.to_dict() for i in self.imported],
            "refused": [r.to_dict() for r in self.refused],
            "waiting": [b.to_dict() for b in self.waiting],
            "settling": [printable(p.name) for p in self.settling],
            "other": [printable(p.name) for p in self.other],
            "unreadable": [printable(p.name) for p in self.unreadable],
        }


def unreadable_text(path: Path) -> str:
    """Why a file is left in the inbox unread, and what to do."""
    try:
        st = path.stat()
        owner = f" (owner uid {st.st_uid}, mode {st.st_mode & 0o777:04o})"
    except OSError:
        owner = ""
    return (
        f"{printable(path.name)}: the appliance user cannot read it{owner}; left in the inbox. "
        "Copy bundles in as the appliance user, or chown them to it"
    )


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith((".tmp", WAITING_SUFFIX))


def _changed(st: os.stat_result) -> float:
    """When the file last changed: ctime too, since a copy that preserves mtimes (``cp -p``)
    cannot set it back."""
    return max(st.st_mtime, st.st_ctime)


def _peek_sequence(path: Path, *, part: bool) -> tuple[int | None, str | None]:
    """The sequence and channel the bundle's statement states, unverified; only orders."""
    try:
        with open(path, "rb") as fh:
            if part:
                read_header(fh, path.name)
            reader = ArchiveReader(fh, source=path.name)
            statement = peek_statement(reader.read_first(STATEMENT_MEMBER), source=path.name)
    except (StellaError, OSError):
        return None, None
    return statement.predicate.sequence, statement.predicate.channel


def scan_inbox(inbox: Path, *, now: float, settle: float = DEFAULT_SETTLE) -> InboxScan:
    """Classify the inbox's files (see the module docstring); reads only part headers and
    statements, changes nothing."""
    settling: list[Path] = []
    other: list[Path] = []
    whole: list[tuple[Path, float]] = []
    parts: dict[str, list[tuple[Path, float]]] = {}
    part_names: dict[str, tuple[str, int]] = {}
    manifests: dict[str, Path] = {}
    broken: list[tuple[Path, float]] = []
    unreadable: list[Path] = []
    for path in sorted(inbox.iterdir()) if inbox.is_dir() else []:
        if _ignored(path.name):
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not path.is_file() or path.is_symlink():
            other.append(path)
            continue
        changed = _changed(st)
        if now - changed < settle:
            settling.append(path)
            continue
        if not os.access(path, os.R_OK):
            unreadable.append(path)
            continue
        if path.name.endswith(MANIFEST_SUFFIX):
            manifests[path.name.removesuffix(MANIFEST_SUFFIX)] = path
        elif is_part(path):
            try:
                with open(path, "rb") as fh:
                    manifest = peek_manifest(read_header(fh, path.name), source=path.name)
            except (StellaError, OSError):
                broken.append((path, st.st_mtime))
                continue
            key = str(manifest.bundle_digest)
            parts.setdefault(key, []).append((path, st.st_mtime))
            part_names[key] = (manifest.bundle_name, manifest.count)
        elif path.name.endswith(BUNDLE_SUFFIX) or _PART_INDEX.search(path.name):
            whole.append((path, st.st_mtime))  # the importer says what is wrong with it
        else:
            other.append(path)

    groups: list[InboxBundle] = []
    for path, mtime in whole + broken:
        sequence, channel = _peek_sequence(path, part=False)
        groups.append(InboxBundle(path.name, (path,), 1, (), sequence, channel, mtime))
    for key, found in parts.items():
        name, count = part_names[key]
        present = set()
        for path, _ in found:
            m = _PART_INDEX.search(path.name)
            if m is not None:
                present.add(int(m.group(1)))
        missing = tuple(part_name(name, i, count) for i in range(1, count + 1) if i not in present)
        files = tuple(sorted(p for p, _ in found))
        first = next((p for p in files if p.name.endswith(part_name("", 1, count))), None)
        sequence, channel = _peek_sequence(first, part=True) if first else (None, None)
        groups.append(
            InboxBundle(name, files, count, missing, sequence, channel, min(t for _, t in found))
        )
    named = {g.name for g in groups}
    other.extend(p for n, p in manifests.items() if n not in named)
    groups = [
        InboxBundle(
            g.name,
            g.files,
            g.count,
            g.missing,
            g.sequence,
            g.channel,
            g.oldest,
            (manifests[g.name],) if g.name in manifests else (),
        )
        for g in groups
    ]
    ready = sorted(
        (g for g in groups if g.complete),
        key=lambda g: (g.sequence is None, g.sequence or 0, g.oldest, g.name),
    )
    waiting = sorted((g for g in groups if not g.complete), key=lambda g: g.name)
    return InboxScan(
        tuple(ready), tuple(waiting), tuple(settling), tuple(sorted(other)), tuple(unreadable)
    )


class ImportLock:
    """The exclusive lock every inbox pass holds: ``flock`` on ``staging/import.lock``.

    ``flock`` is released by the kernel when the process dies, so a crashed pass never leaves
    a stale lock behind."""

    def __init__(self, home: Home) -> None:
        self.path = home.staging / LOCK_NAME

    def held_by_another(self) -> bool:
        """Whether a pass holds the lock right now (for ``inbox status``)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock taken above
        return False

    @contextmanager
    def hold(self, *, wait: bool, on_wait: Callable[[], None] = lambda: None) -> Iterator[bool]:
        """Yield True holding the lock; False (without it) when busy and ``wait`` is off."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)


class InboxProcessor:
    """Imports what the inbox holds, one bundle at a time, under the import lock."""

    def __init__(
        self,
        home: Home,
        *,
        settle: float = DEFAULT_SETTLE,
        keep_imported: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        report: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.home = home.require()
        self.settle = settle
        self.keep_imported = keep_imported
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.report = report

    def scan(self) -> InboxScan:
        return scan_inbox(self.home.inbox, now=self.clock(), settle=self.settle)

    def process(self, *, wait_complete: bool = False, wait_lock: bool = True) -> InboxReport:
        """One pass; with ``wait_complete``, files still being copied are waited for and
        imported in this pass too, instead of being left for the next one."""
        outcome = InboxReport()
        lock = ImportLock(self.home)
        with lock.hold(
            wait=wait_lock, on_wait=lambda: self.report("another import is running; waiting")
        ) as held:
            if not held:
                self.report("another import is running; leaving the inbox to it")
                outcome.busy = True
                return outcome
            while True:
                scan = self.scan()
                waiting = list(scan.waiting)
                for bundle in scan.ready:
                    incomplete = self._import(bundle, outcome)
                    if incomplete is not None:
                        waiting.append(incomplete)
                self._write_waiting(waiting)
                outcome.waiting = tuple(sorted(waiting, key=lambda b: b.name))
                outcome.settling = scan.settling
                outcome.other = scan.other
                outcome.unreadable = scan.unreadable
                for path in scan.unreadable:
                    self.report(unreadable_text(path))
                if not (wait_complete and scan.settling):
                    return outcome
                self.report(
                    f"waiting for {len(scan.settling)} file(s) still being copied: "
                    + ", ".join(printable(p.name) for p in scan.settling)
                )
                self.sleep(max(0.2, min(self.settle, 5.0)))

    def _import(self, bundle: InboxBundle, outcome: InboxReport) -> InboxBundle | None:
        """Import one bundle; returns it when the importer finds the set incomplete."""
        try:
            result = Importer(self.home).run(list(bundle.files), now=self.now())
        except PartsIncompleteError as e:
            self.report(f"{printable(bundle.name)}: {e.message}")
            return InboxBundle(
                bundle.name,
                bundle.files,
                bundle.count,
                (e.message,),
                bundle.sequence,
                bundle.channel,
                bundle.oldest,
                bundle.companions,
            )
        except ImportRefusedError as e:
            self._quarantine_companions(bundle, e.quarantined)
            self.report(f"{printable(bundle.name)}: refused: {e.diagnostics()}")
            outcome.refused.append(Refused(bundle, printable(e.cause.diagnostics()), e.quarantined))
            return None
        disposal = self._dispose(bundle)
        self.report(
            f"{printable(bundle.name)}: imported, sequence {result.sequence} on channel "
            f"{result.channel}; snapshot {result.snapshot} active; files {disposal}"
        )
        outcome.imported.append(
            Imported(
                bundle,
                str(result.bundle),
                result.sequence,
                result.channel,
                str(result.snapshot) if result.snapshot else None,
                disposal,
            )
        )
        return None

    def _dispose(self, bundle: InboxBundle) -> Disposal:
        files = [*bundle.files, *bundle.companions]
        waiting = self.home.inbox / (bundle.name + WAITING_SUFFIX)
        waiting.unlink(missing_ok=True)
        if not self.keep_imported:
            for path in files:
                path.unlink(missing_ok=True)
            return Disposal.DELETED
        target = self.home.root / IMPORTED_DIR
        target.mkdir(mode=0o700, exist_ok=True)
        for path in files:
            shutil.move(str(path), target / path.name)
        return Disposal.KEPT

    def _quarantine_companions(self, bundle: InboxBundle, reason: Path | None) -> None:
        """The importer quarantined the bundle's files; its parts manifest and status file
        follow them, named with the same time stamp, so the inbox is left empty."""
        (self.home.inbox / (bundle.name + WAITING_SUFFIX)).unlink(missing_ok=True)
        if reason is None:
            return
        prefix = reason.name.removesuffix(".reason").removesuffix(bundle.files[0].name)
        for path in bundle.companions:
            if path.exists():
                shutil.move(str(path), reason.parent / f"{prefix}{path.name}")

    def _write_waiting(self, waiting: list[InboxBundle]) -> None:
        """``NAME.waiting`` for each incomplete set; stale ones are removed. A file is written
        only when its text changes (each write wakes the path unit)."""
        wanted = {self.home.inbox / (b.name + WAITING_SUFFIX): b for b in waiting}
        for path in self.home.inbox.glob("*" + WAITING_SUFFIX):
            if path not in wanted:
                path.unlink(missing_ok=True)
        for path, bundle in wanted.items():
            text = bundle.waiting_text()
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                continue
            self.report(text.rstrip("\n"))
            atomic_write(path, text.encode("utf-8"))
