"""Re-evaluate the images in the local store against the active knowledge snapshot.

A verdict is only as current as the snapshot it was made with. After a new snapshot is
activated (an import, or an operator's rollback with ``stella snapshot activate``) and every
night, ``stella rescan`` gates every image again: one verdict, one signed RVA and one ``gate``
audit record per image, exactly as ``stella gate`` makes them, all at one evaluation time.
An image that cannot be gated does not stop the others; it is reported with its reason, and
the run ends with one ``rescan`` audit record naming every image and what became of it.

A FAIL verdict is a successful re-evaluation: the verdict is recorded, that is the job.
Only an image that could not be gated at all makes the run fail.

Activation marker: whoever activates a snapshot (``stella snapshot activate``; the importer
after a successful import) calls :func:`mark_activated`, which rewrites
``$STELLA_HOME/snapshot.activated``; ``stella-rescan.path`` watches that file and starts
``stella-rescan.service`` (docs/runbooks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from appliance.home import Home
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from appliance.store.knowledge import KnowledgeStore
from appliance.vex.model import format_time
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.files import atomic_write

if TYPE_CHECKING:
    from appliance.rva.gate import GateResult

ACTIVATED_MARKER: Final = "snapshot.activated"

Gate = Callable[..., "GateResult"]


class RescanError(StellaError):
    """A rescan cannot start as asked (per-image failures are reported, not raised)."""


class Outcome(StrEnum):
    GATED = "gated"
    FAILED = "failed"


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
            }
        else:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class RescanReport:
    """Every image of one run, in the order they were gated."""

    snapshot: Digest | None
    evaluation_time: str
    images: tuple[ImageOutcome, ...]
    audit_seq: int | None

    @property
    def failed(self) -> tuple[ImageOutcome, ...]:
        return tuple(i for i in self.images if i.outcome is Outcome.FAILED)

    @property
    def verdicts(self) -> dict[str, int]:
        """Verdict -> number of images, verdicts sorted by name."""
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
            "images": [i.to_dict() for i in self.images],
            "gated": len(self.images) - len(self.failed),
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
    store = KnowledgeStore.open(home.knowledge_db)
    try:
        return store.active()
    finally:
        store.close()


def _gate_one(
    home: Home, target: Target, *, at: datetime, gate_fn: Gate, now: Callable[[], datetime]
) -> ImageOutcome:
    try:
        result = gate_fn(home, target.image, at=at, now=now)
    except (StellaError, OSError) as e:
        reason = e.diagnostics() if isinstance(e, StellaError) else f"{e.__class__.__name__}: {e}"
        return ImageOutcome(
            target.image,
            Outcome.FAILED,
            digest=str(target.digest) if target.digest else None,
            error=reason,
            aliases=target.aliases,
        )
    return ImageOutcome(
        target.image,
        Outcome.GATED,
        digest=str(result.verdict.predicate["subject"]["digest"]),
        verdict=result.kind.value,
        referrer=str(result.referrer.digest),
        audit_seq=result.audit_seq,
        aliases=target.aliases,
    )


def _default_gate() -> Gate:
    # Imported here: ``stella snapshot activate`` uses this module's marker and should not
    # load the scanner and the policy engine.
    from appliance.rva.gate import gate

    return gate


def rescan(
    home: Home,
    *,
    at: datetime,
    images: Sequence[str] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    gate_fn: Gate | None = None,
    on_image: Callable[[ImageOutcome], None] = lambda _: None,
) -> RescanReport:
    """Gate every image (or those named) at evaluation time ``at``; continue past failures.

    ``on_image`` is called after each image, so a long run shows progress. The run's own
    ``rescan`` audit record lists each image's outcome; it is written even when nothing was
    gated, so that the log shows the rescan happened.
    """
    home.require()
    if at.tzinfo is None or at.utcoffset() is None:
        raise RescanError(
            f"evaluation time {at.isoformat()} has no time zone", hint="give it as RFC 3339"
        )
    run = gate_fn if gate_fn is not None else _default_gate()
    snapshot = active_snapshot(home)
    outcomes: list[ImageOutcome] = []
    for target in targets(home, images):
        outcome = _gate_one(home, target, at=at, gate_fn=run, now=now)
        outcomes.append(outcome)
        on_image(outcome)
    report = RescanReport(snapshot, format_time(at), tuple(outcomes), None)
    record = record_decision(
        home,
        AuditAction.RESCAN,
        f"{len(outcomes)} images",
        command="rescan",
        time=now(),
        inputs={
            "snapshot": str(snapshot) if snapshot else None,
            "evaluationTime": report.evaluation_time,
            "images": list(images),
        },
        result={
            "images": [i.to_dict() for i in outcomes],
            "failed": len(report.failed),
            "verdicts": report.verdicts,
        },
    )
    return RescanReport(snapshot, report.evaluation_time, report.images, record.seq)


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
