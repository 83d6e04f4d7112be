"""Fold VEX into findings before policy evaluation, so policies never join large arrays.

Which statements apply to a finding (docs/vex.md):

1. the statement names the finding's vulnerability, by its id or any alias on either side;
2. one of its products names the finding: the image (by digest, or by repository when the
   purl has no digest) with no subcomponents (the whole image), or the image with a
   subcomponent naming the finding's component, or the component's purl itself;
3. it is in force at the evaluation time: its timestamp is not later, and, for an exception
   (a statement with an expiry), the expiry has not passed. Expired exceptions are reported,
   never silently dropped; they do not renew by themselves;
4. no statement in force revokes it.

Of the applicable statements one wins, deterministically: operator statements over vendor
statements, then the later timestamp, then the more specific product (subcomponent, then
component, then whole image), then the statement key. The work is linear in findings plus
statements: statements are indexed by vulnerability name first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from appliance.match.model import Finding
from appliance.vex.model import VexStatement, VexStatus
from appliance.vex.products import ImageIdentity, is_image_product, names_component, names_image

WHOLE_IMAGE = 0
COMPONENT = 1
SUBCOMPONENT = 2


@dataclass(frozen=True, slots=True)
class MergedFinding:
    """A finding with the VEX statement that decides its status (None: no statement)."""

    finding: Finding
    vex: VexStatement | None = None
    superseded: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()

    @property
    def status(self) -> VexStatus:
        """The finding's status after VEX; a finding no statement speaks about is affected."""
        return self.vex.status if self.vex is not None else VexStatus.AFFECTED

    @property
    def waived(self) -> bool:
        """VEX says this finding does not put the image at risk."""
        return self.status in (VexStatus.NOT_AFFECTED, VexStatus.FIXED)

    @property
    def exception(self) -> bool:
        """Waived by an exception (a statement with an expiry)."""
        return self.waived and self.vex is not None and self.vex.is_exception


@dataclass(frozen=True, slots=True)
class MergeResult:
    findings: tuple[MergedFinding, ...]
    used: tuple[VexStatement, ...]  # the statements that decided at least one finding
    expired: tuple[VexStatement, ...]  # exceptions that would have applied but expired


def specificity(statement: VexStatement, finding: Finding, image: ImageIdentity) -> int | None:
    """How precisely one of ``statement``'s products names ``finding`` in ``image``; None
    when none does."""
    purl = finding.component.purl
    best: int | None = None
    for product in statement.products:
        if is_image_product(product.id):
            if not names_image(product.id, image):
                continue
            if not product.subcomponents:
                level = WHOLE_IMAGE
            elif any(names_component(s, purl) for s in product.subcomponents):
                level = SUBCOMPONENT
            else:
                continue
        elif names_component(product.id, purl):
            level = COMPONENT
        elif product.subcomponents and any(names_component(s, purl) for s in product.subcomponents):
            level = SUBCOMPONENT
        else:
            continue
        best = level if best is None else max(best, level)
    return best


def merge(
    findings: Sequence[Finding],
    statements: Iterable[VexStatement],
    image: ImageIdentity,
    at: datetime,
) -> MergeResult:
    """Each finding with its winning statement at time ``at`` (see the module docstring)."""
    known = [s for s in statements if s.timestamp <= at]
    revoked = {s.revokes for s in known if s.revokes and s.in_force(at)}
    by_name: dict[str, list[VexStatement]] = defaultdict(list)
    for statement in known:
        if statement.key in revoked:
            continue
        for name in statement.names:
            by_name[name].append(statement)
    merged: list[MergedFinding] = []
    used: dict[str, VexStatement] = {}
    expired_all: dict[str, VexStatement] = {}
    for finding in findings:
        candidates: dict[str, VexStatement] = {}
        for name in finding.ids:
            for statement in by_name.get(name.upper(), ()):
                candidates[statement.key] = statement
        ranked = []
        expired = []
        for statement in candidates.values():
            level = specificity(statement, finding, image)
            if level is None:
                continue
            if not statement.in_force(at):
                expired.append(statement)
                continue
            ranked.append(
                ((statement.origin.rank, statement.timestamp, level, statement.key), statement)
            )
        ranked.sort(key=lambda pair: pair[0])
        winner = ranked[-1][1] if ranked else None
        if winner is not None:
            used[winner.key] = winner
        for statement in expired:
            expired_all[statement.key] = statement
        merged.append(
            MergedFinding(
                finding=finding,
                vex=winner,
                superseded=tuple(sorted(s.key for _, s in ranked[:-1])),
                expired=tuple(sorted(s.key for s in expired)),
            )
        )
    return MergeResult(
        findings=tuple(merged),
        used=tuple(used[k] for k in sorted(used)),
        expired=tuple(expired_all[k] for k in sorted(expired_all)),
    )
