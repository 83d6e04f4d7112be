"""``stella audit list|verify|head``: read, check and anchor the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click

from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import (
    AuditAction,
    AuditError,
    AuditHead,
    AuditLog,
    AuditRecord,
    AuditTamperedError,
    AuditVerification,
    parse_time,
)
from bundles import canonical
from bundles.clikit import EXIT_ERROR, CliContext, pass_ctx
from bundles.errors import UsageError
from bundles.keys import PublicKey

_RESULT_WIDTH = 60


@click.group("audit")
def audit_group() -> None:
    """The hash-chained, signed log of every decision the appliance made."""


def _known_filters() -> list[str]:
    actions = {a.value for a in AuditAction}
    families = {a.split(".")[0] for a in actions if "." in a}
    return sorted(actions | families)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text, where="--since")
    except AuditError as e:
        raise UsageError(e.message, hint=e.hint) from e


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(records: Sequence[AuditRecord]) -> str:
    if not records:
        return "no audit records"
    rows = [("SEQ", "TIME", "ACTION", "SUBJECT", "ACTOR", "RESULT")]
    for r in records:
        result = canonical.dumps(dict(r.result)).decode("utf-8")
        rows.append(
            (
                str(r.seq),
                r.time,
                r.action,
                _clip(r.subject, 40),
                _clip(r.actor, 32),
                _clip(result, _RESULT_WIDTH),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


@audit_group.command("list")
@click.option(
    "--action",
    metavar="ACTION",
    help="Only this action, or a family of them (vex = vex.add, vex.revoke, ...).",
)
@click.option("--since", metavar="TIME", help="Only records at or after this RFC 3339 time.")
@click.option("--subject", metavar="SUBJECT", help="Only records about this digest or name.")
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Only the newest N records.")
@pass_ctx
def list_cmd(
    ctx: CliContext, action: str | None, since: str | None, subject: str | None, limit: int | None
) -> None:
    """Show audit records, oldest first (as stored: run 'audit verify' to check them)."""
    if action is not None and action not in _known_filters():
        raise UsageError(
            f"--action: unknown action {action!r}",
            hint=f"use one of: {', '.join(_known_filters())}",
        )
    since_time = _since(since)
    home = Home(ctx.home).require()
    with open_state(home) as db:
        records = AuditLog(db).records(
            action=action, since=since_time, subject=subject, limit=limit
        )
    ctx.emit(
        {"tenant": home.tenant, "count": len(records), "records": [r.to_dict() for r in records]},
        lambda: (f"tenant {home.tenant}\n" if home.tenant else "") + _table(records),
    )


def _public_key(home: Home, key: Path | None) -> PublicKey:
    return PublicKey.load(key) if key is not None else home.public_key()


def _summary(outcome: AuditVerification) -> str:
    lines = [f"audit log ok: {outcome.records} records, hash chain intact"]
    if outcome.head is not None:
        lines.append(
            f"head checkpoint: record {outcome.head.seq} at {outcome.head.time}, "
            f"signed by key {outcome.head.keyids[0][:16]}"
        )
    if outcome.anchor is not None:
        lines.append(
            f"exported checkpoint of {outcome.anchor.time} (record {outcome.anchor.seq}) "
            "is still in the log"
        )
    return "\n".join(lines)


@audit_group.command("verify")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Appliance public key to check the head checkpoint with "
    "[default: the home's keys/appliance.pub].",
)
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A head checkpoint exported earlier ('audit head --out'); the log must still hold it.",
)
@pass_ctx
def verify_cmd(ctx: CliContext, key: Path | None, anchor: Path | None) -> None:
    """Check that no record was edited, removed or reordered; names the first bad one.

    Exits 1 when the log fails verification (with --json, after printing the result).
    """
    home = Home(ctx.home).require()
    public_key = _public_key(home, key)
    anchor_head = AuditHead.load(anchor, public_key) if anchor is not None else None
    with open_state(home) as db:
        outcome = AuditLog(db, public_key=public_key).verify(anchor=anchor_head)
        path = db.where
    if outcome.problem is None:
        ctx.emit(outcome.to_dict(), lambda: _summary(outcome))
        return
    if ctx.json:
        ctx.emit(outcome.to_dict())
        raise click.exceptions.Exit(EXIT_ERROR)
    raise AuditTamperedError(
        f"audit log {path}: {outcome.problem.message}",
        hint=f"{outcome.verified} of {outcome.records} records verified before it; keep the "
        "database as evidence and compare it with an exported head checkpoint",
    )


@audit_group.command("head")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the signed checkpoint (DSSE JSON) here, for an auditor to keep.",
)
@pass_ctx
def head_cmd(ctx: CliContext, out: Path | None) -> None:
    """Show the signed head checkpoint (record count and last hash), and export it."""
    home = Home(ctx.home).require()
    with open_state(home) as db:
        head = AuditLog(db, public_key=home.public_key()).head()
    if head is None:
        raise AuditError(
            "the audit log is empty; there is no head checkpoint yet",
            hint="checkpoints exist once the appliance has recorded a decision",
        )
    if out is not None:
        try:
            out.write_bytes(head.to_json() + b"\n")
        except OSError as e:
            raise AuditError(f"{out}: cannot write head checkpoint: {e.strerror}") from e
    ctx.emit(
        {**head.to_dict(), "out": str(out) if out is not None else None},
        lambda: (
            f"head checkpoint: record {head.seq} at {head.time}, hash {head.hash}"
            + (f"\nwritten to {out}" if out is not None else "")
        ),
    )
