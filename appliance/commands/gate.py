"""``stella gate IMAGE``: the signed Risk Verdict Attestation (docs/rva.md).

Exit codes: 0 PASS or PASS_WITH_EXCEPTIONS, 3 FAIL, 4 INDETERMINATE (always 0 when the
policy runs in audit mode); 1 when no verdict could be produced at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from appliance.commands.bounds import scan_bound_options
from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from appliance.scanner.jobs import ScanBounds
from appliance.vex.model import VexError, parse_time
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


def _text(result: GateResult, out: Path | None) -> str:
    p = result.verdict.predicate
    s = p["summary"]
    lines = [
        f"{result.kind.value}  {p['subject']['name']} {p['subject']['digest']}",
        f"policy {p['policy']['id']} {p['policy']['version']} ({p['policy']['mode']}) "
        f"{p['policy']['digest']}",
        f"findings {s['findings']}: affected {s['affected']}, not_affected {s['notAffected']}, "
        f"fixed {s['fixed']}, under_investigation {s['underInvestigation']}, "
        f"exceptions {s['exceptions']}, unknowns {s['unknowns']}",
    ]
    if p["reasonCodes"]:
        lines.append("reasons: " + ", ".join(p["reasonCodes"]))
    lines.append(f"attestation {result.referrer.digest} (evaluated at {p['evaluationTime']})")
    if out is not None:
        lines.append(f"wrote {out}")
    return "\n".join(lines)


@click.command("gate")
@click.argument("image")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed RVA here."
)
@click.option("--at", "at_text", help="Evaluation time (RFC 3339); default now, recorded.")
@click.option(
    "--policy",
    "policy_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Policy bundle directory (.rego files + data.json).",
)
@click.option("--platform", help="OS/ARCH[/VARIANT] of a multi-platform image.")
@scan_bound_options
@pass_ctx
@click.pass_context
def gate_cmd(
    click_ctx: click.Context,
    ctx: CliContext,
    image: str,
    out: Path | None,
    at_text: str | None,
    policy_dir: Path | None,
    platform: str | None,
    scan_bounds: Callable[[Home], ScanBounds],
) -> None:
    """Decide, sign and attach the risk verdict for IMAGE. A scan stopped by its bound
    (docs/scale-out.md) gives an INDETERMINATE verdict with RISK.UNKNOWN.SCAN_LIMIT."""
    home = Home(ctx.home).require()
    try:
        at = parse_time(at_text, where="--at") if at_text else datetime.now(UTC)
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e
    result = gate(
        home, image, at=at, policy_dir=policy_dir, platform=platform, bounds=scan_bounds(home)
    )
    if out is not None:
        out.write_bytes(result.bundle)
    ctx.emit({**result.summary(), **({"out": str(out)} if out else {})}, _text(result, out))
    click_ctx.exit(result.exit_code)
