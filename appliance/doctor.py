"""``stella doctor``: is this appliance home healthy, and if not, what to do about it.

Each check returns one :class:`Check` with a status (ok, warn, fail), what it found and, unless
ok, how to fix it. Checks change nothing the home holds: databases are only read (opening one
keeps it in WAL mode, as every command does) and the OCI store is only re-hashed. They are
independent, so one broken part of the home (a corrupt ``state.db``) does not hide the state
of the others. Time is handed in (``now``), so tests and an operator asking "what will be
wrong next month" get the same answers.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from appliance import tlog
from appliance.home import SUBDIRS, Home
from appliance.intake.inbox import scan_inbox, unreadable_text
from appliance.intake.trust_store import TrustStore
from appliance.keyring import rotation_days, rotation_plan
from appliance.store import database_url, has_knowledge, has_state, open_knowledge, open_state
from appliance.store.audit import AuditLog
from appliance.store.db import SqliteDatabase
from bundles import rfc3339
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.keys import PublicKey, format_instant
from bundles.oci.layout import INDEX_LIMIT, OCILayout

GiB: Final = 1 << 30
DEFAULT_MIN_FREE: Final = GiB
DEFAULT_WAL_WARN: Final = 256 << 20
OCI_SAMPLE: Final = 64
"""Blobs re-hashed by a quick check (chosen at random, so repeated runs cover the store)."""


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """Thresholds, all overridable from the command line."""

    min_free: int = DEFAULT_MIN_FREE
    wal_warn: int = DEFAULT_WAL_WARN
    trust_warn: timedelta = timedelta(days=30)
    snapshot_warn: timedelta = timedelta(days=7)
    snapshot_fail: timedelta = timedelta(days=30)
    full_oci: bool = False
    index_warn: int = INDEX_LIMIT * 3 // 4  # the image store's index.json, in bytes


@dataclass(frozen=True, slots=True)
class Diagnosis:
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=Status.OK)

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "checks": [c.to_dict() for c in self.checks]}


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _parse_time(text: str) -> datetime:
    return rfc3339.parse_time(text, where="snapshot created")


class Doctor:
    """Runs every check on one home."""

    def __init__(
        self,
        home: Home,
        *,
        now: datetime,
        limits: Limits | None = None,
        free_space: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free,
        uid: int | None = None,
    ) -> None:
        self.home = home
        self.now = now
        self.limits = limits or Limits()
        self.free_space = free_space
        self.uid = os.geteuid() if uid is None else uid

    def run(self) -> Diagnosis:
        home_check = self.check_home()
        if home_check.status is Status.FAIL and not self.home.initialized:
            return Diagnosis((home_check,))
        checks = [home_check, self._guard("disk", self.check_disk)]
        checks += list(self.check_databases())
        checks += [
            self._guard("oci", self.check_oci),
            self._guard("leftovers", self.check_leftovers),
            self._guard("trust", self.check_trust),
            self._guard("snapshot", self.check_snapshot),
            self._guard("audit", self.check_audit),
            self._guard("tlog", self.check_tlog),
            self._guard("keys", self.check_keys),
            self._guard("inbox", self.check_inbox),
        ]
        return Diagnosis(tuple(checks))

    @staticmethod
    def _guard(name: str, check: Callable[[], Check]) -> Check:
        """Run one check; what it could not read is its failure, not the end of the others."""
        try:
            return check()
        except StellaError as e:
            return Check(name, Status.FAIL, e.message, e.hint)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            return Check(name, Status.FAIL, f"{where}{e.strerror or e}", "check the file's owner")

    # -- the home itself -------------------------------------------------------------------

    def check_home(self) -> Check:
        root = self.home.root
        if not root.is_dir() or not self.home.initialized:
            what = "does not exist" if not root.exists() else "is not an appliance home"
            return Check("home", Status.FAIL, f"{root} {what}", f"run 'stella --home {root} init'")
        problems: list[str] = []
        fixes: list[str] = []
        st = root.stat()
        if st.st_uid != self.uid:
            problems.append(f"{root} is owned by uid {st.st_uid}, not the running uid {self.uid}")
            fixes.append(f"chown -R {self.uid} {root} (or run as the owner)")
        if st.st_mode & 0o077:
            problems.append(f"{root} has mode {st.st_mode & 0o777:04o}, not 0700")
            fixes.append(f"chmod 0700 {root}")
        missing = [d for d in SUBDIRS if not (root / d).is_dir()]
        if missing:
            problems.append(f"missing directories: {', '.join(missing)}")
            fixes.append(f"run 'stella --home {root} init' (it keeps the existing key)")
        key = self.home.appliance_key
        if self.home.signer_reference() is not None:
            pass  # the key lives in the token config.json names, not in keys/
        elif not key.is_file():
            problems.append(f"appliance key {key} is missing")
            fixes.append("restore keys/ from a backup: verdicts and the audit log are signed by it")
        elif key.stat().st_mode & 0o077:
            problems.append(f"appliance key {key} has mode {key.stat().st_mode & 0o777:04o}")
            fixes.append(f"chmod 0600 {key}")
        if problems:
            return Check("home", Status.FAIL, "; ".join(problems), "; ".join(fixes))
        return Check("home", Status.OK, f"{root}: mode 0700, owned by uid {self.uid}")

    def check_tlog(self) -> Check:
        """The transparency log: its checkpoint signed and backed by its right-edge tiles
        (``stella log verify`` recomputes every tile)."""
        try:
            log = tlog.open_home_log(self.home)
        except tlog.LogNotStartedError:
            return Check("tlog", Status.OK, "not started yet (nothing signed so far)")
        detail = f"{log.origin}: {log.size} entries, checkpoint verified"
        if log.pending:
            return Check(
                "tlog",
                Status.WARN,
                f"{detail}; {log.pending} entries past it (an append was interrupted)",
                "nothing to do: the next signed attestation includes them",
            )
        return Check("tlog", Status.OK, detail)

    def check_disk(self) -> Check:
        free = self.free_space(self.home.root)
        largest = 0
        if self.home.inbox.is_dir():
            for path in self.home.inbox.iterdir():
                if path.is_file() and not path.is_symlink():
                    largest = max(largest, path.stat().st_size)
        need = max(self.limits.min_free, 2 * largest)
        detail = f"{_size(free)} free"
        if free < need:
            why = (
                f"twice the largest file in the inbox ({_size(largest)})"
                if 2 * largest > self.limits.min_free
                else "the minimum"
            )
            return Check(
                "disk",
                Status.WARN,
                f"{detail}, below {_size(need)} ({why})",
                "free space on the home's file system (old quarantined bundles, 'stella gc'), "
                "or grow it",
            )
        return Check("disk", Status.OK, detail)

    # -- SQLite ----------------------------------------------------------------------------

    def check_databases(self) -> Iterator[Check]:
        url = database_url(self.home)
        if url is not None:
            yield self._check_postgres()
            return
        for label, path in (
            ("knowledge.db", self.home.knowledge_db),
            ("state.db", self.home.state_db),
        ):
            yield self._check_database(label, path)

    def _check_postgres(self) -> Check:
        """A scale-out home: both stores reachable in their PostgreSQL schemas (integrity and
        durability are the server's; its own monitoring watches them)."""
        try:
            with open_state(self.home) as state:
                where = state.where
            open_knowledge(self.home).close()
        except StellaError as e:
            return Check("database", Status.FAIL, e.message, e.hint)
        return Check("database", Status.OK, f"PostgreSQL {where.rsplit(' (', 1)[0]} reachable")

    def _check_database(self, label: str, path: Path) -> Check:
        if not path.exists():
            return Check(label, Status.OK, "not created yet (nothing stored so far)")
        restore = "stop the appliance services and restore the database from a backup"
        try:
            db = SqliteDatabase.open(path)
        except StellaError as e:
            return Check(label, Status.FAIL, e.message, e.hint or restore)
        try:
            rows = db.query("PRAGMA integrity_check", what="check integrity")
            mode = str(db.query("PRAGMA journal_mode", what="read the journal mode")[0][0])
        except StellaError as e:
            return Check(label, Status.FAIL, e.message, restore)
        finally:
            db.close()
        result = [str(r[0]) for r in rows]
        if result != ["ok"]:
            shown = "; ".join(result[:3]) + (
                f" (and {len(result) - 3} more)" if len(result) > 3 else ""
            )
            return Check(label, Status.FAIL, f"integrity check failed: {shown}", restore)
        wal = path.with_name(path.name + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
        if mode.lower() != "wal":
            return Check(
                label,
                Status.WARN,
                f"journal mode is {mode}, not wal",
                "keep the home on a local file system; any stella command switches it back",
            )
        if wal_size > self.limits.wal_warn:
            return Check(
                label,
                Status.WARN,
                f"integrity ok; write-ahead log is {_size(wal_size)} (not checkpointed)",
                "a long-running reader (tui, serve) keeps the log from being checkpointed; "
                "restart it, the next write then folds the log back",
            )
        return Check(label, Status.OK, f"integrity ok, WAL mode, write-ahead log {_size(wal_size)}")

    # -- OCI store -------------------------------------------------------------------------

    def check_oci(self) -> Check:
        oci = self.home.oci
        if not (oci / "oci-layout").is_file():
            return Check("oci", Status.OK, "no image loaded yet")
        fix = "remove the damaged images ('stella images rm') and load them again"
        try:
            layout = OCILayout.open(oci)
            if self.limits.full_oci:
                report = layout.verify()
                if report.ok:
                    return Check("oci", Status.OK, f"{report.checked} blobs re-hashed, all intact")
                problems = [f"{p.path.name}: {p.reason}" for p in report.bad]
                problems += [f"{d} is referenced but missing" for d in report.missing]
                return Check("oci", Status.FAIL, "; ".join(problems[:5]), fix)
            missing = sorted(layout.reachable().missing)
            blobs = sorted((oci / "blobs" / "sha256").glob("*"))
            sample = random.sample(blobs, min(OCI_SAMPLE, len(blobs)))
            bad = []
            for path in sorted(sample):
                actual, _ = Digest.of_file(path)
                if actual.hex != path.name:
                    bad.append(f"{path.name}: content hashes to {actual}")
        except (StellaError, OSError) as e:
            message = e.message if isinstance(e, StellaError) else str(e)
            return Check("oci", Status.FAIL, message, fix)
        problems = bad + [f"{d} is referenced but missing" for d in missing]
        if problems:
            return Check("oci", Status.FAIL, "; ".join(problems[:5]), fix)
        index = (oci / "index.json").stat().st_size
        if index > self.limits.index_warn:
            return Check(
                "oci",
                Status.WARN,
                f"index.json is {_size(index)} of the {_size(INDEX_LIMIT)} the image store "
                f"accepts ({len(layout.entries()):,} entries; each gate adds three or four)",
                "before it is full (then no gate, load or import can write to the store), move "
                "images to a tenant or home of their own (docs/scale-out.md, 'What bounds "
                "daily re-gates')",
            )
        return Check(
            "oci",
            Status.OK,
            f"{len(sample)} of {len(blobs)} blobs re-hashed, every referenced blob present "
            f"(--full re-hashes all); index.json {_size(index)} of {_size(INDEX_LIMIT)}",
        )

    def check_leftovers(self) -> Check:
        """Temporary files of the OCI store that no live process is writing (a killed import,
        load or gate): reported, never removed here (``stella gc`` and the next write do)."""
        oci = self.home.oci
        if not (oci / "oci-layout").is_file():
            return Check("leftovers", Status.OK, "no image store yet")
        found = [f for f in OCILayout.open(oci).leftovers() if not f.lock]
        if not found:
            return Check("leftovers", Status.OK, "no temporary files left by interrupted writers")
        size = sum(f.size for f in found)
        names = ", ".join(f.path.name for f in found[:3]) + (" …" if len(found) > 3 else "")
        return Check(
            "leftovers",
            Status.WARN,
            f"{len(found)} temporary file(s) ({_size(size)}) left in {oci}/.stella by interrupted "
            f"writers: {names}",
            "run 'stella gc' (the next import or load also removes them)",
        )

    # -- trust, knowledge, audit -----------------------------------------------------------

    def check_trust(self) -> Check:
        try:
            roots = TrustStore(self.home.trust).all()
        except StellaError as e:
            return Check("trust", Status.FAIL, e.message, e.hint or "restore trust/ from a backup")
        if not roots:
            return Check(
                "trust",
                Status.WARN,
                "no mirror is trusted: nothing can be imported",
                "run 'stella trust add trust-root.json' with the mirror's trust root",
            )
        expired = [r for r in roots if r.expires <= self.now]
        soon = [r for r in roots if self.now < r.expires <= self.now + self.limits.trust_warn]
        listing = ", ".join(f"{r.channel} v{r.version} until {r.expires:%Y-%m-%d}" for r in roots)
        rotate = (
            "carry a bundle with the rotated root from the mirror, or run "
            "'stella trust rotate NEW-ROOT.json'"
        )
        if expired:
            names = ", ".join(f"{r.channel} (expired {r.expires:%Y-%m-%d})" for r in expired)
            return Check("trust", Status.FAIL, f"trust root expired: {names}", rotate)
        if soon:
            names = ", ".join(f"{r.channel} in {(r.expires - self.now).days} days" for r in soon)
            return Check("trust", Status.WARN, f"trust root expires soon: {names}", rotate)
        return Check("trust", Status.OK, listing)

    def check_snapshot(self) -> Check:
        if not has_knowledge(self.home):
            return Check(
                "snapshot",
                Status.WARN,
                "no knowledge snapshot imported yet",
                "import a bundle from the mirror (drop it into inbox/)",
            )
        try:
            store = open_knowledge(self.home)
            try:
                active = next((s for s in store.snapshots() if s.active), None)
            finally:
                store.close()
        except StellaError as e:
            return Check("snapshot", Status.FAIL, e.message, "see the knowledge.db check")
        if active is None:
            return Check(
                "snapshot",
                Status.WARN,
                "no active knowledge snapshot",
                "import a bundle from the mirror (drop it into inbox/)",
            )
        age = self.now - _parse_time(active.created)
        detail = (
            f"active snapshot {active.digest.short()} (sequence {active.sequence}, channel "
            f"{active.channel}) is {age.days} days old"
        )
        fix = "export a fresh bundle on the mirror and carry it over"
        if age > self.limits.snapshot_fail:
            return Check("snapshot", Status.FAIL, detail, fix)
        if age > self.limits.snapshot_warn:
            return Check("snapshot", Status.WARN, detail, fix)
        return Check("snapshot", Status.OK, detail)

    def check_audit(self) -> Check:
        if not has_state(self.home):
            return Check("audit", Status.OK, "no decision recorded yet")
        try:
            key = PublicKey.load(self.home.appliance_pub)
            with open_state(self.home) as db:
                outcome = AuditLog(db, public_key=key).verify()
        except StellaError as e:
            return Check("audit", Status.FAIL, e.message, e.hint or "see the state.db check")
        if outcome.problem is not None:
            return Check(
                "audit",
                Status.FAIL,
                f"{outcome.problem.message} ({outcome.verified} of {outcome.records} records "
                "verified before it)",
                "keep state.db as evidence, compare it with an exported head checkpoint "
                "('stella audit verify --anchor'); see docs/audit-log.md",
            )
        return Check("audit", Status.OK, f"{outcome.records} records, hash chain and head intact")

    def check_keys(self) -> Check:
        """The signing key: not revoked, and rotated on schedule (a warning 14 days before
        its planned rotation date, ``keyRotationDays`` in config.json, default quarterly)."""
        plan = rotation_plan(self.home, now=self.now)
        key = plan.key
        short = key.keyid[:16]
        due = format_instant(plan.due)
        if key.revoked is not None and self.now >= key.revoked.at:
            return Check(
                "keys",
                Status.FAIL,
                f"signing key {short} was revoked at {format_instant(key.revoked.at)} "
                f"({key.revoked.reason}); nothing can be signed",
                "rotate to a new key now: 'stella keys rotate' (docs/runbooks.md)",
            )
        if plan.next_key is not None:
            start = plan.next_key.valid_for.start
            assert start is not None
            return Check(
                "keys",
                Status.OK,
                f"signing key {short}; key {plan.next_key.keyid[:16]} takes over at "
                f"{format_instant(start)}",
            )
        if plan.warn(self.now):
            overdue = self.now >= plan.due
            return Check(
                "keys",
                Status.WARN,
                f"signing key {short} is {'past' if overdue else 'near'} its planned rotation "
                f"date {due} ({rotation_days(self.home)} days after it took over)",
                "plan the next key: 'stella keys rotate --at TIME' (docs/keys.md)",
            )
        return Check("keys", Status.OK, f"signing key {short}, rotation due {due}")

    def check_inbox(self) -> Check:
        scan = scan_inbox(self.home.inbox, now=self.now.timestamp(), settle=0)
        notes = [b.waiting_text().rstrip("\n") for b in scan.waiting]
        if scan.other:
            notes.append("not bundles, left alone: " + ", ".join(p.name for p in scan.other))
        notes += [unreadable_text(p) for p in scan.unreadable]
        if scan.ready:
            notes.append("not imported yet: " + ", ".join(b.name for b in scan.ready))
        if notes:
            return Check(
                "inbox",
                Status.WARN,
                "; ".join(notes),
                "bring the missing parts, remove stray files; 'stella inbox process' imports",
            )
        return Check("inbox", Status.OK, "empty")
