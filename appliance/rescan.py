"""Re-evaluate the images in the local store against the active knowledge snapshot.

A verdict is only as current as the snapshot it was made with. After a new snapshot is
activated (an import, or an operator's rollback with ``stella snapshot activate``) and every
night, ``stella rescan`` gates every image again: one verdict, one signed RVA and one ``gate``
audit record per image, exactly as ``stella gate`` makes them, all at one evaluation time.
An image that cannot be gated does not stop the others; it is reported with its reason, and
the run ends with one ``rescan`` audit record naming every image and what became of it.

A FAIL verdict is a successful re-evaluation: the verdict is recorded, that is the job.
Only an image that could not be gated at all makes the run fail.

Incremental by default: an image is gated again only when something its verdict depends on
changed since its latest verdict (``--all`` gates every image). The knowledge delta between
the snapshot of its latest verdict and the active one (:mod:`appliance.store.delta`) gives the
package keys and CVE ids that changed, and each changed OSV record's bodies; the component
index (:mod:`appliance.store.components`, filled here after each gate) says which images
asked for them and at which versions, and a changed record selects an image only when its
old or new body concerns a version the image holds (:func:`touched`). A changed policy digest, a
change to the stored VEX statements, or a VEX statement (an exception) that took effect or
expired between the image's last evaluation time and this one gates the image again; so does
anything the index cannot vouch for (never gated, not indexed, indexed under another snapshot
than its latest verdict, the old snapshot pruned). Every other image keeps its verdict, and
the run's audit record says why, with the snapshot digests and the policy digest.

The images to gate are gated in batches (:func:`gate_batch`): the same verdicts as one
``stella gate`` each, with one advisory cache and one compiled policy for the run, and per batch
one transparency-log append, one ``index.json`` rewrite and one state transaction holding every
image's verdict, audit records and component index entry. A run killed part-way leaves whole
images recorded; the next run gates the rest.

Activation marker: whoever activates a snapshot (``stella snapshot activate``; the importer
after a successful import) calls :func:`mark_activated`, which rewrites
``$STELLA_HOME/snapshot.activated``; ``stella-rescan.path`` watches that file and starts
``stella-rescan.service`` (docs/runbooks.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from appliance.faults import fault
from appliance.home import Home
from appliance.store import has_knowledge, open_knowledge, open_state, record_decision
from appliance.store.audit import AuditAction
from appliance.store.components import ComponentIndex, IndexedImage, ProbeRow
from appliance.store.db import Database
from appliance.store.knowledge import KnowledgeStore
from appliance.store.verdicts import VerdictRow, VerdictStore
from appliance.store.vex import VexStore
from appliance.vex.model import VexStatement, format_time, parse_time
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import StellaError, describe
from bundles.files import atomic_write

if TYPE_CHECKING:
    from appliance.match.model import Inventory
    from appliance.match.source import Probe
    from appliance.policy.bundle import PolicyBundle
    from appliance.rva.gate import GateResult, GateSession
    from appliance.rva.pool import Prepared
    from appliance.store.delta import Delta
    from bundles.signer import Signer

ACTIVATED_MARKER: Final = "snapshot.activated"

BATCH: Final = 64
"""Images gated together: large enough that the batch's one log append, one ``index.json``
rewrite and one commit cost little per image; small enough that a crash redoes little."""

MIN_IMAGES: Final = 32
"""Fewer images than this are decided in the rescan's own process: starting workers (a fresh
interpreter, the policy compiled again) costs about what deciding a few dozen images does."""


Gate = Callable[..., "GateResult"]


class RescanError(StellaError):
    """A rescan cannot start as asked (per-image failures are reported, not raised)."""


class Outcome(StrEnum):
    GATED = "gated"
    FAILED = "failed"
    SKIPPED = "skipped"  # its verdict stands: nothing it depends on changed


@dataclass(frozen=True, slots=True)
class Target:
    """One image to gate: the name it is gated by and every other name for the same digest."""

    image: str
    digest: Digest | None  # None when named on the command line and not yet resolved
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """What became of one image: its verdict, or why it could not be gated."""

    image: str
    outcome: Outcome
    digest: str | None = None
    verdict: str | None = None
    referrer: str | None = None
    audit_seq: int | None = None
    error: str | None = None
    aliases: tuple[str, ...] = ()
    reason: str | None = None  # why it was gated again, or why it was not
    previous: str | None = None  # the verdict before this run

    @property
    def changed(self) -> bool:
        """Gated again to a different verdict than its previous one."""
        return (
            self.outcome is Outcome.GATED
            and self.previous is not None
            and self.verdict != self.previous
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image, "outcome": self.outcome.value}
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.outcome is Outcome.GATED:
            out |= {
                "digest": self.digest,
                "verdict": self.verdict,
                "referrer": self.referrer,
                "auditSeq": self.audit_seq,
                "previous": self.previous,
                "changed": self.changed,
            }
        elif self.outcome is Outcome.SKIPPED:
            out |= {"digest": self.digest, "verdict": self.verdict}
        else:
            out["error"] = self.error
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class RescanReport:
    """Every image of one run, in the order they were gated."""

    snapshot: Digest | None
    evaluation_time: str
    images: tuple[ImageOutcome, ...]
    audit_seq: int | None
    policy: str | None = None
    full: bool = True

    @property
    def failed(self) -> tuple[ImageOutcome, ...]:
        return tuple(i for i in self.images if i.outcome is Outcome.FAILED)

    @property
    def gated(self) -> tuple[ImageOutcome, ...]:
        return tuple(i for i in self.images if i.outcome is Outcome.GATED)

    @property
    def skipped(self) -> tuple[ImageOutcome, ...]:
        return tuple(i for i in self.images if i.outcome is Outcome.SKIPPED)

    @property
    def changed(self) -> tuple[ImageOutcome, ...]:
        return tuple(i for i in self.images if i.changed)

    @property
    def verdicts(self) -> dict[str, int]:
        """Verdict -> number of images (gated or kept), verdicts sorted by name."""
        counts: dict[str, int] = {}
        for item in self.images:
            if item.verdict is not None:
                counts[item.verdict] = counts.get(item.verdict, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def exit_code(self) -> int:
        """0 when every image was gated (whatever the verdicts), 1 when any could not be."""
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": str(self.snapshot) if self.snapshot else None,
            "evaluationTime": self.evaluation_time,
            "policy": self.policy,
            "mode": "full" if self.full else "incremental",
            "images": [i.to_dict() for i in self.images],
            "gated": len(self.gated),
            "skipped": len(self.skipped),
            "changed": len(self.changed),
            "failed": len(self.failed),
            "verdicts": self.verdicts,
            "auditSeq": self.audit_seq,
        }


def targets(home: Home, images: Sequence[str] = ()) -> list[Target]:
    """The images named, in the order given (duplicates dropped); else every image in the
    local store, once per manifest digest, by its first name in name order."""
    from appliance.imagestore.catalog import list_images  # the scanner stack, loaded when needed

    if images:
        return [Target(name, None) for name in dict.fromkeys(images)]
    by_digest: dict[Digest, list[str]] = {}
    for summary in sorted(list_images(home), key=lambda s: s.tag):
        by_digest.setdefault(summary.digest, []).append(summary.tag)
    return [
        Target(names[0], digest, tuple(names[1:]))
        for digest, names in sorted(by_digest.items(), key=lambda item: item[1][0])
    ]


def active_snapshot(home: Home) -> Digest | None:
    store = open_knowledge(home)
    try:
        return store.active()
    finally:
        store.close()


def _gate_one(
    home: Home,
    target: Target,
    *,
    at: datetime,
    gate_fn: Gate,
    now: Callable[[], datetime],
    reason: str | None = None,
    previous: str | None = None,
) -> ImageOutcome:
    try:
        result = gate_fn(home, target.image, at=at, now=now)
    except (StellaError, OSError) as e:
        return _failed(target, e, reason, previous)
    return _gated(target, result, reason, previous)


def _gated(
    target: Target, result: GateResult, reason: str | None, previous: str | None
) -> ImageOutcome:
    return ImageOutcome(
        target.image,
        Outcome.GATED,
        digest=str(result.verdict.predicate["subject"]["digest"]),
        verdict=result.kind.value,
        referrer=str(result.referrer.digest),
        audit_seq=result.audit_seq,
        aliases=target.aliases,
        reason=reason,
        previous=previous,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one image is gated again, and why (or why not)."""

    gate: bool
    reason: str
    previous: VerdictRow | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What every image's verdict depends on now: the active snapshot, the policy digest,
    the digest of the stored VEX statements and the times statements start or stop to
    apply."""

    snapshot: Digest | None
    policy: str
    vex: str
    changes: tuple[tuple[datetime, str], ...]  # (when, what): statements taking effect, expiring
    created: Mapping[str, str] = field(default_factory=dict)  # snapshot digest -> created
    # the policy's limit on the snapshot's age in days (data ``stella.thresholds``); None when
    # the policy has none, and then any change of the age in whole days may matter
    age_limit: int | None = None
    # whether the policy can read EPSS: some file of it names ``epss`` or reads the input
    # generically (``walk``, ``object.keys``, ``json.marshal``)
    reads_epss: bool = True
    # whether the policy reads the evaluation time itself (``evaluationTime``, ``time.now``),
    # or the snapshot's identity (``knowledge.id``, ``knowledge.created``): then every new
    # evaluation time, or every new snapshot, can change any verdict
    reads_time: bool = False
    reads_snapshot: bool = False


def _vex_digest(statements: Sequence[Any]) -> str:
    return str(Digest.of_bytes(b"\n".join(sorted(canonical.dumps(s) for s in statements))))


_EPSS_READERS: Final = ("epss", "walk(", "object.keys", "json.marshal")


def context(home: Home) -> Context:
    """The inputs every decision of the run shares, read once."""
    from appliance.rva.gate import choose_policy
    from appliance.vex.service import snapshot_statements

    snapshot = active_snapshot(home)
    with open_state(home) as db:
        stored = VexStore(db).statements()
    statements = [VexStatement.from_dict(body) for body in stored]
    created: dict[str, str] = {}
    if has_knowledge(home):
        store = open_knowledge(home)
        try:
            policy = choose_policy(None, store, snapshot)
            if snapshot is not None:
                statements.extend(snapshot_statements(store, snapshot)[0])
            created = {str(r.digest): r.created for r in store.snapshots()}
        finally:
            store.close()
    else:
        policy = choose_policy(None, None, None)
    thresholds = policy.data.get("stella", {}).get("thresholds", {})
    limit = thresholds.get("max_snapshot_age_days") if isinstance(thresholds, dict) else None
    changes: list[tuple[datetime, str]] = []
    for s in statements:  # a statement applies from its time until its expiry (if any)
        what = "exception" if s.expires is not None else "VEX statement"
        changes.append((s.timestamp, f"{what} {s.key} for {s.vulnerability} takes effect"))
        if s.expires is not None:
            changes.append((s.expires, f"{what} {s.key} for {s.vulnerability} expires"))
    return Context(
        snapshot=snapshot,
        policy=str(policy.digest),
        vex=_vex_digest(stored),
        changes=tuple(sorted(changes)),
        created=created,
        age_limit=limit if isinstance(limit, int) else None,
        reads_epss=_names(policy, _EPSS_READERS),
        reads_time=_names(policy, ("evaluationtime", "time.now")),
        reads_snapshot=_names(policy, ("knowledge.id", "knowledge.created")),
    )


def _names(policy: PolicyBundle, words: Sequence[str]) -> bool:
    """Whether some file of the policy names one of ``words`` (compared in lower case)."""
    return any(word in f.content.lower() for f in policy.files for word in words)


def _short(digest: str | Digest | None) -> str:
    if digest is None:
        return "none"
    return Digest.parse(str(digest)).short() if isinstance(digest, str) else digest.short()


def plan(
    home: Home, found: Sequence[Target], ctx: Context, *, at: datetime
) -> dict[Digest, Decision]:
    """For each target with a digest, whether to gate it again (see the module's text)."""
    from appliance.store.delta import snapshot_delta

    decisions: dict[Digest, Decision] = {}
    with open_state(home) as db:
        verdicts = VerdictStore(db)
        index = ComponentIndex(db)
        indexed = index.images()
        latest = {t.digest: verdicts.latest(str(t.digest)) for t in found if t.digest}
        waiting: dict[str, list[Digest]] = {}  # old snapshot -> images to check against its delta
        for digest, row in latest.items():
            if digest is None:
                continue
            entry = indexed.get(str(digest))
            why = _must_gate(row, entry, ctx, at)
            if why is not None:
                decisions[digest] = Decision(True, why, row)
            elif row is not None and row.snapshot != (str(ctx.snapshot) if ctx.snapshot else None):
                waiting.setdefault(str(row.snapshot), []).append(digest)
            else:
                decisions[digest] = Decision(
                    False,
                    f"snapshot {_short(ctx.snapshot)} and policy {_short(ctx.policy)} "
                    "unchanged since its last gate",
                    row,
                )
        if not waiting:
            return decisions
        assert ctx.snapshot is not None  # an image gated under another snapshot is waiting
        store = open_knowledge(home)
        try:
            deltas: dict[str, Delta] = {
                old: snapshot_delta(store, Digest.parse(old), ctx.snapshot) for old in waiting
            }
        finally:
            store.close()
        for old, digests in waiting.items():
            delta = deltas[old]
            span = f"snapshot {_short(old)} -> {_short(ctx.snapshot)}"
            if delta.everything is not None:
                hit = dict.fromkeys((str(d) for d in digests), delta.everything)
            else:
                cves = delta.cves | delta.epss if ctx.reads_epss else delta.cves
                hit = touched(index, delta, cves, indexed)
            for digest in digests:
                row = latest[digest]
                cause = hit.get(str(digest))
                if cause is not None:
                    what = (
                        cause
                        if delta.everything is not None
                        else f"{span} changes {cause} it depends on"
                    )
                    decisions[digest] = Decision(True, what, row)
                else:
                    decisions[digest] = Decision(
                        False,
                        f"{span} ({delta.records} records changed in "
                        f"{len(delta.datasets)} datasets) touches none of its packages or "
                        f"CVEs; policy {_short(ctx.policy)} unchanged",
                        row,
                    )
    return decisions


def touched(
    index: ComponentIndex,
    delta: Delta,
    cves: Iterable[str],
    indexed: Mapping[str, IndexedImage],
) -> dict[str, str]:
    """The indexed images ``delta`` can change (subject -> what changes, to say why): every
    image citing one of ``cves``; every image holding a changed record's package key whose
    entry has no versions (indexed before they were recorded), or whose record id is
    ambiguous (:attr:`Delta.ambiguous`); and every image whose version of a key the record,
    before or after the change, affects or leaves undecided, by the matcher's own rules
    (:func:`appliance.match.matcher.record_outcome`). An image whose every version of the
    record's keys neither body concerns keeps its findings: it is not selected by it."""
    from appliance.match.matcher import record_outcome
    from appliance.match.source import Probe

    found = index.holders((), cves)
    keyed = index.holders(delta.packages)
    by_key: dict[tuple[str, str], list[tuple[Probe, set[str]]]] = {}
    for row, subjects in index.probes(delta.packages).items():
        by_key.setdefault((row[0], row[1]), []).append((Probe(*row), subjects))
    hit: dict[str, str] = {}
    for change in delta.changes:
        bodies = (*change.before, *change.after)
        for key in sorted(change.keys):
            for probe, subjects in by_key.get(key, ()):
                if change.id in delta.ambiguous:
                    why = f"{change.id} ({key[0]}/{key[1]}, an id with several bodies)"
                elif any(record_outcome(doc, probe) is not None for doc in bodies):
                    why = f"{change.id} ({key[0]}/{key[1]} {probe.version})"
                else:
                    continue
                for subject in subjects:
                    hit.setdefault(subject, why)
    for subject, why in keyed.items():
        entry = indexed.get(subject)
        if entry is None or not entry.probed:
            found.setdefault(subject, why)
        elif subject in hit:
            found.setdefault(subject, hit[subject])
    return found


def _must_gate(
    row: VerdictRow | None, entry: IndexedImage | None, ctx: Context, at: datetime
) -> str | None:
    """Why the image must be gated whatever the knowledge delta says, or None."""
    if row is None:
        return "never gated"
    if entry is None:
        return "not in the component index"
    if entry.snapshot != row.snapshot:
        return "its component index entry is older than its latest verdict"
    if row.policy != ctx.policy:
        return f"policy changed ({_short(row.policy)} -> {_short(ctx.policy)})"
    if entry.vex != ctx.vex:
        return "the stored VEX statements changed"
    if ctx.reads_time and row.evaluation_time != format_time(at):
        return "the policy reads the evaluation time"
    if ctx.reads_snapshot and row.snapshot != (str(ctx.snapshot) if ctx.snapshot else None):
        return "the policy reads the snapshot's identity, and the snapshot changed"
    if (row.snapshot is None) != (ctx.snapshot is None):
        return f"snapshot changed ({_short(row.snapshot)} -> {_short(ctx.snapshot)})"
    last = parse_time(row.evaluation_time, where="verdict evaluation time")
    then = _age(ctx, row.snapshot, last)
    now = _age(ctx, str(ctx.snapshot) if ctx.snapshot else None, at)
    if ctx.age_limit is None and then != now:
        return f"the snapshot's age changed ({then} -> {now} days) and the policy may use it"
    if ctx.age_limit is not None and _stale(then, ctx.age_limit) != _stale(now, ctx.age_limit):
        return f"the snapshot's age crosses the policy's limit of {ctx.age_limit} days"
    low, high = min(last, at), max(last, at)
    for when, what in ctx.changes:
        if low < when <= high:
            return f"{what} at {format_time(when)}"
    return None


def _age(ctx: Context, snapshot: str | None, at: datetime) -> int | None:
    """The snapshot's age in whole days at ``at``, as the policy input computes it."""
    created = ctx.created.get(snapshot) if snapshot else None
    if not created:
        return None
    try:
        return int((at - parse_time(created, where="snapshot created")).total_seconds() // 86400)
    except StellaError:
        return None


def _stale(age: int | None, limit: int) -> bool:
    """What the default policy concludes: an unknown age is stale, as an age over the limit."""
    return age is None or age > limit


def dependencies(
    store: KnowledgeStore, snapshot: Digest, inventory: Inventory
) -> tuple[frozenset[tuple[str, str]], frozenset[str], frozenset[ProbeRow]]:
    """Match ``inventory`` against ``snapshot`` and return what the matcher looked up: the
    (ecosystem, normalized name) package keys, the CVE ids (for KEV, EPSS, ratings) and what
    each key's records were compared with (as component index rows)."""
    from appliance.ecosystems import normalize_name
    from appliance.match.matcher import match
    from appliance.match.service import KnowledgeAdvisories

    keys: set[tuple[str, str]] = set()
    cves: set[str] = set()
    probes: set[Probe] = set()

    class Recording(KnowledgeAdvisories):
        def probed(self, asked: Iterable[Probe]) -> None:
            probes.update(asked)

        def prefetch(self, packages: Iterable[tuple[str, str]]) -> None:
            asked = list(packages)
            keys.update((e, normalize_name(e, n)) for e, n in asked)
            super().prefetch(asked)

        def advisories(self, ecosystem: str, name: str) -> Any:
            keys.add((ecosystem, normalize_name(ecosystem, name)))
            return super().advisories(ecosystem, name)

        def prefetch_cves(self, asked: Iterable[str]) -> None:
            ids = list(asked)
            cves.update(ids)
            super().prefetch_cves(ids)

        def cve_records(self, cve: str) -> Any:
            cves.add(cve)
            return super().cve_records(cve)

        def ghsa_records(self, cve: str) -> Any:
            cves.add(cve)
            return super().ghsa_records(cve)

        def kev(self, cve: str) -> Any:
            cves.add(cve)
            return super().kev(cve)

        def epss(self, cve: str) -> Any:
            cves.add(cve)
            return super().epss(cve)

    match(inventory, Recording(store, snapshot))
    return frozenset(keys), frozenset(cves), frozenset(_rows(probes))


def _rows(probes: Iterable[Probe]) -> Iterator[ProbeRow]:
    """Probes as the component index stores them."""
    for p in probes:
        yield (p.ecosystem, p.name, p.version, p.distro, p.module)


def index_image(home: Home, image: str, subject: str, ctx: Context, *, when: datetime) -> None:
    """Put ``image`` (manifest ``subject``) into the component index: scan it (the layer
    cache answers for every layer the gate just read; nothing is recorded), match it against
    the active snapshot recording what the matcher looks up (:func:`dependencies`), and store
    that under the snapshot and stored-VEX digest of ``ctx``."""
    from appliance.match.service import inventory_of
    from appliance.rva.reasons import ReasonCode
    from appliance.scanner.jobs import scan_bounded

    keys: frozenset[tuple[str, str]] = frozenset()
    cves: frozenset[str] = frozenset()
    probes: frozenset[ProbeRow] = frozenset()
    with open_state(home) as db:
        latest = VerdictStore(db).latest(subject)
    if latest is not None and ReasonCode.UNKNOWN_SCAN_LIMIT.value in latest.reason_codes:
        # its scan was just stopped by its bound: not scanned again for the index, and not
        # indexed, so the next run gates it again (with the bounds then in force)
        return
    if ctx.snapshot is not None:
        scan = scan_bounded(home, image, audit=False)
        store = open_knowledge(home)
        try:
            keys, cves, probes = dependencies(store, ctx.snapshot, inventory_of(scan))
        finally:
            store.close()
    with open_state(home) as db:
        ComponentIndex(db).put(
            subject,
            snapshot=str(ctx.snapshot) if ctx.snapshot else None,
            vex=ctx.vex,
            indexed=format_time(when),
            keys=keys,
            cves=cves,
            probes=probes,
        )


def rescan(
    home: Home,
    *,
    at: datetime,
    images: Sequence[str] = (),
    full: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    gate_fn: Gate | None = None,
    on_image: Callable[[ImageOutcome], None] = lambda _: None,
    index: bool = True,
    batch: int = BATCH,
    jobs: int | None = None,
) -> RescanReport:
    """Gate the images whose verdict may have changed (every image with ``full``; the named
    ones, always, when ``images`` are given) at evaluation time ``at``; continue past failures.

    ``on_image`` is called after each image, so a long run shows progress. The run's own
    ``rescan`` audit record lists each image's outcome and why; it is written even when
    nothing was gated, so that the log shows the rescan happened. Each image gated is put
    into the component index (``index``) so the next run can tell whether a delta touches it.

    Images are gated ``batch`` at a time (:func:`gate_batch`): one match cache and one
    compiled policy for the run, one transparency-log append, one ``index.json`` rewrite and
    one state transaction per batch. With ``jobs`` of 2 or more (by default, one per CPU this
    process may run on, when there are enough images to be worth starting them) the images
    are decided in that many worker processes while this one signs and records
    (:mod:`appliance.rva.pool`). ``gate_fn`` (a stand-in for
    :func:`appliance.rva.gate.gate`, for tests) gates them one by one instead.
    """
    home.require()
    if at.tzinfo is None or at.utcoffset() is None:
        raise RescanError(
            f"evaluation time {at.isoformat()} has no time zone", hint="give it as RFC 3339"
        )
    ctx = context(home)
    snapshot = ctx.snapshot
    found = targets(home, images)
    every = full or bool(images)
    decisions = {} if every else plan(home, found, ctx, at=at)
    work: list[tuple[Target, Decision, str | None]] = []
    by_name: dict[str, str] | None = None  # read once, when an image is named
    for target in found:
        decision = decisions.get(target.digest) if target.digest else None
        if decision is None:
            decision = Decision(True, "named" if images else "full rescan")
        previous = decision.previous.verdict if decision.previous else None
        if decision.gate and previous is None and target.digest is None:
            if by_name is None:
                by_name = _previous_by_name(home)
            previous = by_name.get(target.image)
        work.append((target, decision, previous))
    if gate_fn is not None:
        outcomes = _one_by_one(
            home, work, at=at, gate_fn=gate_fn, now=now, ctx=ctx, index=index, on_image=on_image
        )
    else:
        outcomes = _batched(
            home,
            work,
            at=at,
            now=now,
            ctx=ctx,
            index=index,
            batch=batch,
            jobs=jobs,
            on_image=on_image,
        )
    report = RescanReport(
        snapshot, format_time(at), tuple(outcomes), None, policy=ctx.policy, full=every
    )
    record = record_decision(
        home,
        AuditAction.RESCAN,
        f"{len(outcomes)} images",
        command="rescan",
        time=now(),
        inputs={
            "snapshot": str(snapshot) if snapshot else None,
            "policy": ctx.policy,
            "vex": ctx.vex,
            "mode": "full" if every else "incremental",
            "evaluationTime": report.evaluation_time,
            "images": list(images),
        },
        result={
            "images": [_audited(i, decisions) for i in outcomes],
            "gated": len(report.gated),
            "skipped": len(report.skipped),
            "changed": len(report.changed),
            "failed": len(report.failed),
            "verdicts": report.verdicts,
        },
    )
    return RescanReport(
        snapshot,
        report.evaluation_time,
        report.images,
        record.seq,
        policy=ctx.policy,
        full=every,
    )


def default_jobs() -> int:
    """The worker processes a rescan decides images in by default: one per CPU this process
    may run on (its affinity, which a unit's ``CPUAffinity=`` or a container's cpuset limits)."""
    return len(os.sched_getaffinity(0))


def _skipped(target: Target, decision: Decision, previous: str | None) -> ImageOutcome:
    return ImageOutcome(
        target.image,
        Outcome.SKIPPED,
        digest=str(target.digest),
        verdict=previous,
        aliases=target.aliases,
        reason=decision.reason,
        previous=previous,
    )


def _failed(
    target: Target, error: BaseException | str, reason: str | None, previous: str | None
) -> ImageOutcome:
    why = error if isinstance(error, str) else describe(error)
    return ImageOutcome(
        target.image,
        Outcome.FAILED,
        digest=str(target.digest) if target.digest else None,
        error=why,
        aliases=target.aliases,
        reason=reason,
        previous=previous,
    )


def _one_by_one(
    home: Home,
    work: Sequence[tuple[Target, Decision, str | None]],
    *,
    at: datetime,
    gate_fn: Gate,
    now: Callable[[], datetime],
    ctx: Context,
    index: bool,
    on_image: Callable[[ImageOutcome], None],
) -> list[ImageOutcome]:
    """Each image through ``gate_fn`` in turn, then into the component index."""
    outcomes: list[ImageOutcome] = []
    for target, decision, previous in work:
        if not decision.gate:
            outcome = _skipped(target, decision, previous)
        else:
            outcome = _gate_one(
                home,
                target,
                at=at,
                gate_fn=gate_fn,
                now=now,
                reason=decision.reason,
                previous=previous,
            )
            if index and outcome.outcome is Outcome.GATED and outcome.digest:
                # not indexed: the next run gates it again ("not in the component index")
                with contextlib.suppress(StellaError, OSError):
                    index_image(home, target.image, outcome.digest, ctx, when=now())
        outcomes.append(outcome)
        on_image(outcome)
    return outcomes


def _batched(
    home: Home,
    work: Sequence[tuple[Target, Decision, str | None]],
    *,
    at: datetime,
    now: Callable[[], datetime],
    ctx: Context,
    index: bool,
    batch: int,
    jobs: int | None,
    on_image: Callable[[ImageOutcome], None],
) -> list[ImageOutcome]:
    """The images to gate, ``batch`` at a time through :func:`gate_batch`; outcomes in the
    order of ``work``, each reported once its batch is recorded. With ``jobs`` of 2 or more
    (by default, one per CPU when there are at least ``MIN_IMAGES`` to gate) the images are
    decided in that many worker processes (:class:`appliance.rva.pool.DecidePool`), the next
    batch while this one is signed."""
    if batch < 1:
        raise RescanError(f"batch size {batch} is not a positive number")
    outcomes: list[ImageOutcome] = []
    groups = _groups(work, batch)
    chosen = [[(t, d.reason, p) for t, d, p in group if d.gate] for group in groups]
    if not any(chosen):
        for target, decision, previous in work:
            outcomes.append(_skipped(target, decision, previous))
            on_image(outcomes[-1])
        return outcomes
    from appliance.rva.gate import GateSession  # the scanner stack, loaded when needed
    from appliance.rva.pool import DecidePool

    key = home.signing_key(at=at, now=now())
    if jobs is None:
        jobs = default_jobs() if sum(map(len, chosen)) >= MIN_IMAGES else 1
    with GateSession(home) as session, contextlib.ExitStack() as stack:
        pool = stack.enter_context(DecidePool(home, jobs)) if jobs > 1 else None

        def submit(k: int) -> list[Future[Prepared]]:
            assert pool is not None
            return pool.submit([t.image for t, _, _ in chosen[k]], at=at) if k < len(groups) else []

        deciding = submit(0) if pool is not None else []
        for k, group in enumerate(groups):
            prepared = None
            if pool is not None:  # the next batch is decided while this one is signed
                deciding, this = submit(k + 1), deciding
                prepared = pool.collect(this)
            gated = iter(
                gate_batch(
                    home,
                    session,
                    chosen[k],
                    at=at,
                    now=now,
                    key=key,
                    ctx=ctx,
                    index=index,
                    prepared=prepared,
                )
            )
            for target, decision, previous in group:
                outcome = next(gated) if decision.gate else _skipped(target, decision, previous)
                outcomes.append(outcome)
                on_image(outcome)
            fault("rescan.after-batch")
    return outcomes


def _groups(
    work: Sequence[tuple[Target, Decision, str | None]], batch: int
) -> list[list[tuple[Target, Decision, str | None]]]:
    """``work`` cut after every ``batch`` images to gate (the skipped ones ride along)."""
    groups: list[list[tuple[Target, Decision, str | None]]] = [[]]
    gating = 0
    for item in work:
        if gating == batch:
            groups.append([])
            gating = 0
        groups[-1].append(item)
        gating += item[1].gate
    return groups


def gate_batch(
    home: Home,
    session: GateSession,
    chosen: Sequence[tuple[Target, str, str | None]],
    *,
    at: datetime,
    now: Callable[[], datetime],
    key: Signer,
    ctx: Context,
    index: bool = True,
    prepared: Sequence[Prepared] | None = None,
) -> list[ImageOutcome]:
    """Gate ``chosen`` (target, why, previous verdict) together, each exactly as
    :func:`appliance.rva.gate.gate` would (the same verdict bytes): scanned from the layer
    cache (no layer is read again), matched through the session's shared advisory cache,
    evaluated with its compiled policy (or decided already, ``prepared``, one per image, by
    worker processes); then signed, logged, attached and recorded together
    (:func:`appliance.rva.gate.sign_and_attach_many`), each image's component index entry
    (what its match looked up) in the same transaction as its verdict and audit records. An
    image that cannot be decided is reported and the others go on; a failure to sign, log,
    attach or record fails the images of this batch only."""
    from appliance.rva.gate import Decided, sign_and_attach_many
    from appliance.rva.pool import decide

    if prepared is None:
        prepared = [decide(home, session, target.image, at=at) for target, _, _ in chosen]
    outcomes: dict[int, ImageOutcome] = {}
    decided: list[tuple[int, Decided, Prepared]] = []
    for n, ((target, reason, previous), item) in enumerate(zip(chosen, prepared, strict=True)):
        if item.decided is None:
            outcomes[n] = _failed(target, item.error or "not decided", reason, previous)
        else:
            decided.append((n, item.decided, item))
    looked_up = {id(item): looked for _, item, looked in decided}
    when = now()

    def put_index(db: Database, item: Decided, result: GateResult) -> None:
        if item.inputs.scan_limit is not None:
            return  # a stopped scan's packages are unknown: gated again next time
        looked = looked_up[id(item)]
        ComponentIndex(db).put(
            str(item.descriptor.digest),
            snapshot=str(session.snapshot) if session.snapshot else None,
            vex=ctx.vex,
            indexed=format_time(when),
            keys=looked.keys or (),
            cves=looked.cves or (),
            probes=_rows(looked.probes or ()),
        )

    try:
        results = sign_and_attach_many(
            home,
            [item for _, item, _ in decided],
            key=key,
            now=when,
            layout=session.layout,
            also=put_index if index else None,
        )
    except (StellaError, OSError) as e:
        for n, _, _ in decided:
            target, reason, previous = chosen[n]
            outcomes[n] = _failed(target, e, reason, previous)
    else:
        for (n, _, _), result in zip(decided, results, strict=True):
            target, reason, previous = chosen[n]
            outcomes[n] = _gated(target, result, reason, previous)
    return [outcomes[n] for n in range(len(chosen))]


def _audited(item: ImageOutcome, decisions: dict[Digest, Decision]) -> dict[str, Any]:
    """An image's line in the rescan record: for a skipped image, the snapshot and policy of
    the verdict it keeps."""
    out = item.to_dict()
    decision = decisions.get(Digest.parse(item.digest)) if item.digest else None
    if decision is not None and decision.previous is not None:
        out["lastVerdict"] = {
            "snapshot": decision.previous.snapshot,
            "policy": decision.previous.policy,
            "evaluationTime": decision.previous.evaluation_time,
            "auditSeq": decision.previous.audit_seq,
        }
    return out


def _previous_by_name(home: Home) -> dict[str, str]:
    """Image name -> the latest verdict recorded under it (an image named on the command line
    has no digest until it is gated)."""
    with open_state(home) as db:
        return VerdictStore(db).latest_verdicts_by_name()


def marker_path(home: Home) -> Path:
    return home.root / ACTIVATED_MARKER


def mark_activated(home: Home, snapshot: Digest | None, when: datetime) -> Path:
    """Rewrite ``snapshot.activated`` (atomically: a new file renamed over the old one) with
    the snapshot now active and when; the rename wakes ``stella-rescan.path``. ``None``: the
    knowledge did not change but there is something new to gate (a bundle that carried
    images only)."""
    path = marker_path(home)
    body = {"snapshot": str(snapshot) if snapshot else None, "time": format_time(when)}
    atomic_write(path, canonical.dumps(body), tmp_dir=path.parent)
    return path


def regate(
    home: Home,
    target: Target,
    ctx: Context,
    *,
    at: datetime,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    reason: str | None = None,
    previous: str | None = None,
) -> ImageOutcome:
    """Gate one image again and put it into the component index, exactly as one image of
    :func:`rescan` is: the entry point of a queued ``scan-gate`` job (:mod:`appliance.fleet`),
    which writes no ``rescan`` record of its own (the run that enqueued it did)."""
    from appliance.rva.gate import gate  # the scanner and the policy engine, when gating

    outcome = _gate_one(
        home, target, at=at, gate_fn=gate, now=now, reason=reason, previous=previous
    )
    if outcome.outcome is Outcome.GATED and outcome.digest:
        with contextlib.suppress(StellaError, OSError):
            index_image(home, target.image, outcome.digest, ctx, when=now())
    return outcome
