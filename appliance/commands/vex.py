"""``stella vex add|list|revoke|import|export|suggest``: the operators' VEX statements
(docs/vex.md); ``suggest`` proposes statements from reachability (docs/reachability.md)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance.home import Home
from appliance.scanner.image import ImageRef, open_image
from appliance.store import has_knowledge, open_knowledge
from appliance.vex import export, service
from appliance.vex.model import Justification, VexError, VexStatus, format_time, parse_time
from appliance.vex.products import ImageIdentity, parse_purl
from bundles import canonical
from bundles.clikit import CliContext, pass_ctx
from bundles.digest import Digest
from bundles.errors import DigestError, UsageError
from bundles.intoto import Subject


@click.group("vex")
def vex_group() -> None:
    """Author, revoke, import and list VEX statements (OpenVEX v0.2.0)."""


def _time(text: str | None, option: str) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text, where=option)
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e


def resolve_image(home: Home, text: str) -> service.ImageTarget:
    """An image named by digest, by ``pkg:oci`` purl with a digest, or as the scanner names
    images (store name, ``oci:DIR``, ``docker-archive:FILE``)."""
    try:
        if text.startswith("sha256:"):
            return service.ImageTarget(Digest.parse(text), text)
        if text.startswith("pkg:"):
            purl = parse_purl(text)
            if purl is None or purl.type != "oci" or not purl.version.startswith("sha256:"):
                raise UsageError(
                    f"--image {text!r} is not a pkg:oci purl with a sha256 digest",
                    hint="write pkg:oci/NAME@sha256:HEX, or name an image in the store",
                )
            repo = dict(purl.qualifiers).get("repository_url", purl.name)
            return service.ImageTarget(Digest.parse(purl.version.lower()), repo)
    except DigestError as e:
        raise UsageError(f"--image {text!r}: {e.message}", hint=e.hint) from e
    opened = open_image(ImageRef.parse(text), store=home.oci)
    if opened.manifest_digest is None:
        raise UsageError(
            f"--image {text!r} has no manifest digest to make a statement about",
            hint="name an image in the store, oci:DIR or docker-archive:FILE",
        )
    return service.ImageTarget(opened.manifest_digest, opened.name)


def _report(ctx: CliContext, verb: str, recorded: service.Recorded) -> None:
    ctx.emit(
        {
            "document": recorded.document,
            "statements": [s.key for s in recorded.statements],
            "new": recorded.new,
            "auditSeq": recorded.audit_seq,
            "attached": [
                {"subject": str(a.subject), "referrer": str(a.referrer.digest)}
                for a in recorded.attached
            ],
        },
        lambda: (
            "\n".join(
                f"{verb} {s.key} ({s.vulnerability} {s.status.value}"
                + (f", expires {format_time(s.expires)}" if s.expires else "")
                + ")"
                for s in recorded.statements
            )
            + ("" if recorded.new else "\n(already stored; nothing changed)")
            + "".join(
                f"\nOpenVEX attestation attached to {a.subject} as referrer {a.referrer.digest}"
                for a in recorded.attached
            )
        ),
    )


@vex_group.command("add")
@click.argument("vulnerability")
@click.option("--image", "image", required=True, help="Image: NAME[:TAG], digest, or pkg:oci purl.")
@click.option("--component", "components", multiple=True, help="Component purl (repeatable).")
@click.option(
    "--status", type=click.Choice([s.value for s in VexStatus]), required=True, help="VEX status."
)
@click.option(
    "--justification",
    type=click.Choice([j.value for j in Justification]),
    help="Why not_affected.",
)
@click.option("--impact", default="", help="Impact statement (for not_affected).")
@click.option("--action", default="", help="Action statement (required for affected).")
@click.option("--expires", help="Expiry (RFC 3339 or a date): makes the statement an exception.")
@click.option("--at", "at_text", help="Statement time (RFC 3339); default now.")
@pass_ctx
def add_cmd(
    ctx: CliContext,
    vulnerability: str,
    image: str,
    components: tuple[str, ...],
    status: str,
    justification: str | None,
    impact: str,
    action: str,
    expires: str | None,
    at_text: str | None,
) -> None:
    """Make a signed VEX statement about VULNERABILITY in an image."""
    home = Home(ctx.home).require()
    for purl in components:
        if parse_purl(purl) is None:
            raise UsageError(f"--component {purl!r} is not a purl", hint="write pkg:TYPE/NAME@V")
    at = _time(at_text, "--at")
    try:
        recorded = service.add(
            home,
            vulnerability=vulnerability,
            image=resolve_image(home, image),
            components=components,
            status=VexStatus(status),
            justification=Justification(justification) if justification else None,
            impact=impact,
            action=action,
            expires=parse_time(expires, where="--expires") if expires else None,
            at=at,
        )
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e
    _report(ctx, "added", recorded)


@vex_group.command("revoke")
@click.argument("statement")
@click.option("--reason", default="", help="Why the statement no longer holds.")
@click.option("--at", "at_text", help="Revocation time (RFC 3339); default now.")
@pass_ctx
def revoke_cmd(ctx: CliContext, statement: str, reason: str, at_text: str | None) -> None:
    """Supersede STATEMENT with a signed under_investigation statement (nothing is deleted)."""
    home = Home(ctx.home).require()
    recorded = service.revoke(home, statement, reason=reason, at=_time(at_text, "--at"))
    _report(ctx, "revoked by", recorded)


@vex_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--at", "at_text", help="Import time (RFC 3339); default now.")
@pass_ctx
def import_cmd(ctx: CliContext, files: tuple[Path, ...], at_text: str | None) -> None:
    """Import vendor OpenVEX documents (plain, or in-toto/DSSE-wrapped)."""
    home = Home(ctx.home).require()
    at = _time(at_text, "--at")
    results = service.import_files(home, files, at=at)
    ctx.emit(
        {
            "documents": [
                {"document": r.document, "statements": len(r.statements), "new": r.new}
                for r in results
            ]
        },
        lambda: "\n".join(
            f"{path}: {len(r.statements)} statements" + ("" if r.new else " (already imported)")
            for path, r in zip(files, results, strict=True)
        ),
    )


@vex_group.command("list")
@click.option("--vulnerability", help="Only statements about this vulnerability.")
@pass_ctx
def list_cmd(ctx: CliContext, vulnerability: str | None) -> None:
    """List the statements authored or imported on this appliance."""
    home = Home(ctx.home).require()
    statements = service.stored_statements(home)
    if vulnerability:
        statements = [s for s in statements if vulnerability.upper() in s.names]
    revoked = {s.revokes for s in statements if s.revokes}
    rows = [
        {
            **s.to_dict(),
            "revoked": s.key in revoked,
        }
        for s in statements
    ]

    def table() -> str:
        if not rows:
            return "no VEX statements"
        lines = []
        for s in statements:
            flags = []
            if s.key in revoked:
                flags.append("revoked")
            if s.expires:
                flags.append(f"expires {format_time(s.expires)}")
            extra = f" [{', '.join(flags)}]" if flags else ""
            lines.append(
                f"{s.key}  {s.vulnerability}  {s.status.value}  {s.origin.value}  "
                f"{format_time(s.timestamp)}{extra}"
            )
        return "\n".join(lines)

    ctx.emit({"statements": rows}, table)


@vex_group.command("export")
@click.option("--image", "image", help="Only statements that may apply to this image.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document to FILE instead of stdout.",
)
@click.option(
    "--signed",
    is_flag=True,
    help="Write the DSSE-signed in-toto attestation (Sigstore bundle) instead.",
)
@click.option(
    "--at", "at_text", help="Time the statements are in force at (RFC 3339); default now."
)
@pass_ctx
def export_cmd(
    ctx: CliContext, image: str | None, out: Path | None, signed: bool, at_text: str | None
) -> None:
    """Export the statements in force as one OpenVEX 0.2.0 document (or, with --signed, as
    the attestation cosign attest --type openvex writes)."""
    home = Home(ctx.home).require()
    at = _time(at_text, "--at").replace(microsecond=0)
    target = resolve_image(home, image) if image is not None else None
    identity = (
        ImageIdentity.of(str(target.digest), names=(target.name,)) if target is not None else None
    )
    statements = service.in_force_for(home, identity, at)
    try:
        doc = export.export_document(statements, author=service.author(home))
        if signed:
            if target is not None:
                subjects = [Subject.of(target.name, target.digest)]
            else:
                subjects = [Subject.of("image", d) for d in export.image_digests(statements)]
            data = export.attestation(doc, subjects, home.signing_key())
        else:
            data = canonical.dumps(doc) + b"\n"
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e
    if out is not None:
        out.write_bytes(data)
    summary = {
        "document": doc["@id"],
        "statements": len(statements),
        "signed": signed,
        "predicateType": export.PREDICATE_TYPE if signed else None,
        "out": str(out) if out is not None else None,
        "digest": str(Digest.of_bytes(data)),
    }
    if ctx.json:
        if out is None:
            summary["content"] = canonical.loads(data, source="export")
        ctx.emit(summary)
    elif out is None:
        click.echo(data.decode(), nl=False)
    else:
        kind = "signed OpenVEX attestation" if signed else "OpenVEX document"
        ctx.info(f"{kind} with {len(statements)} statements written to {out}")


@vex_group.command("suggest")
@click.argument("image")
@click.option("--platform", help="os/arch[/variant] of a multi-platform image.")
@pass_ctx
def suggest_cmd(ctx: CliContext, image: str, platform: str | None) -> None:
    """Propose not_affected statements for IMAGE's findings whose vulnerable code is not
    present (vulnerable_code_not_present) or present but reached by no call chain or import
    chain from an entrypoint (vulnerable_code_not_in_execute_path); nothing is signed or
    stored: an operator reviews each and makes it with 'stella vex add'."""
    from appliance.rva.gate import read_snapshot
    from appliance.scanner.jobs import scan_bounded
    from appliance.vex.suggest import suggestion

    home = Home(ctx.home).require()
    if not has_knowledge(home):
        raise UsageError(
            "there is no knowledge store to match against",
            hint="import a knowledge bundle with 'stella import' first",
        )
    scan = scan_bounded(home, image, platform=platform)
    store = open_knowledge(home)
    try:
        reading = read_snapshot(store, scan)
    finally:
        store.close()
    if reading is None:
        raise UsageError(
            "the knowledge store has no active snapshot",
            hint="import a knowledge bundle with 'stella import' first",
        )
    stated: dict[str, list[str]] = {}
    for statement in service.stored_statements(home):
        if statement.status is VexStatus.NOT_AFFECTED:
            for name in statement.names:
                stated.setdefault(name, []).append(statement.key)
    target = f"{scan.name}@{scan.manifest_digest}" if scan.manifest_digest else image
    suggestions: list[dict[str, Any]] = []
    for f in reading.report.findings:
        proposed = suggestion(f)
        if proposed is None:
            continue
        argv = [
            "stella", "vex", "add", f.id, "--image", target,
            "--component", f.component.purl, "--status", proposed.status.value,
            "--justification", proposed.justification.value, "--impact", proposed.impact,
        ]  # fmt: skip
        suggestions.append(
            {
                "vulnerability": f.id,
                "aliases": list(f.aliases),
                "component": f.component.purl,
                "reachability": f.reachable.value,
                "status": proposed.status.value,
                "justification": proposed.justification.value,
                "impact": proposed.impact,
                **(
                    {"chain": list(f.evidence.reachability_chain)}
                    if f.evidence.reachability_chain
                    else {}
                ),
                "stated": sorted({k for n in f.ids for k in stated.get(n, ())}),
                "command": shlex.join(argv),
            }
        )

    def text() -> str:
        if not suggestions:
            return (
                f"no findings of {target} have vulnerable code that is not present or not reached"
            )
        lines = [
            f"{len(suggestions)} finding(s) of {target} whose vulnerable code is not present or"
            " not reached; review each, then sign it with the command shown (nothing was"
            " signed):"
        ]
        for s in suggestions:
            already = f" [already stated: {', '.join(s['stated'])}]" if s["stated"] else ""
            lines += [
                f"{s['vulnerability']} in {s['component']} ({s['reachability']}){already}",
                f"  evidence: {s['impact']}",
                f"  {s['command']}",
            ]
        return "\n".join(lines)

    ctx.emit(
        {
            "image": target,
            "snapshot": str(reading.snapshot),
            "signed": False,
            "suggestions": suggestions,
        },
        text,
    )
