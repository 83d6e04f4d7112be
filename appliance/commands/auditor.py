"""``stella verify``, ``explain``, ``replay``, ``export-audit-package`` and
``verify-audit-package``: prove offline why an artifact was blocked or allowed
(docs/auditing.md).

Exit codes: 0 verified / MATCH; 1 verification failed or an input is missing (one line
naming what); 3 ``replay`` found a DIFF.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance import tlog
from appliance.auditor import explain as explaining
from appliance.auditor.package import CHECKS, export_package, verify_package
from appliance.auditor.replay import ReplayOutcome, replay
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import (
    BlobSource,
    LayoutBlobs,
    RvaVerification,
    attached_verdicts,
    verify_in_home,
    verify_rva,
)
from appliance.home import Home
from appliance.keyring import load_ring
from appliance.notation import service as notation_service
from appliance.notation.trust import TrustPolicyDocument, TrustStore
from appliance.sigstore import tsa
from appliance.sigstore.tsa import TimestampAuthority
from appliance.sigstore.verify import (
    Artifact,
    BundleForm,
    SigstoreResult,
    classify,
    read_bundle_file,
    verify_keyless,
    verify_with_key,
)
from appliance.store import known_logs
from bundles import canonical
from bundles.clikit import CliContext, pass_ctx
from bundles.digest import Digest
from bundles.errors import UsageError
from bundles.keys import PublicKey
from bundles.oci import OCILayout
from bundles.tlog.note import Verifier

EXIT_DIFF = 3

_key_option = click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key (PEM) to trust; repeatable. Default: the appliance key of --home.",
)
_trust_policy_option = click.option(
    "--trust-policy",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Trust policy (JSON): which keys may sign which predicate types.",
)


def _home(ctx: CliContext) -> Home | None:
    home = Home(ctx.home)
    return home if home.initialized else None


def _policy(ctx: CliContext, keys: Sequence[Path], trust_policy: Path | None) -> TrustPolicy:
    if trust_policy is not None:
        return TrustPolicy.load(trust_policy)
    if keys:
        return TrustPolicy.of_keys(PublicKey.load(k) for k in keys)
    home = _home(ctx)
    if home is None:
        raise UsageError(
            f"no key to verify with: {ctx.home} is not an appliance home",
            hint="pass --key PUB (the appliance's public key) or --trust-policy FILE",
        )
    return TrustPolicy.of_ring(load_ring(home))


def _read(path: Path) -> bytes:
    """A verdict or Sigstore bundle file, refused with what it is not when it is not one."""
    data = read_bundle_file(path)
    classify(data, str(path))
    return data


def _own_verdict(
    ctx: CliContext,
    data: bytes,
    policy: TrustPolicy,
    source: str,
    subject: Digest | None,
    logs: Sequence[Verifier],
    authorities: Sequence[TimestampAuthority] = (),
    *,
    attached: bool = False,
) -> tuple[RvaVerification, BlobSource | None]:
    """Verify an appliance-signed bundle, its signing time proven by ``logs`` where they
    hold its entry; on the appliance that signed it, with the evidence of its OCI store and
    the gate's audit record. A verdict another appliance signed that is ``attached`` to an
    image of this store (a worker's, loaded with its referrers) is checked against the
    evidence the store holds beside it."""
    home = _home(ctx)
    if home is not None and any(policy.rule_for(e.keyid) for e in load_ring(home).entries):
        # the file's own faults (form, signer, predicate) first, then this appliance's records
        verify_rva(data, policy, source=source, subject=subject, logs=logs, authorities=authorities)
        blobs = LayoutBlobs(OCILayout.open(home.oci))
        verified = verify_in_home(
            home,
            data,
            policy,
            source=source,
            subject=subject,
            logs=logs,
            authorities=authorities,
        )
        return verified, blobs
    store = LayoutBlobs(OCILayout.open(home.oci)) if home is not None and attached else None
    verified = verify_rva(
        data,
        policy,
        source=source,
        subject=subject,
        blobs=store,
        logs=logs,
        authorities=authorities,
    )
    return verified, store


def _target(
    ctx: CliContext,
    target: str,
    policy: TrustPolicy,
    subject: Digest | None,
    logs: Sequence[Verifier] | None = None,
    authorities: Sequence[TimestampAuthority] = (),
) -> tuple[RvaVerification, BlobSource | None]:
    trusted = _home_logs(ctx) if logs is None else logs
    path = Path(target)
    if path.is_file():
        data = _read(path)
        return _own_verdict(ctx, data, policy, str(path), subject, trusted, authorities)
    home = _home(ctx)
    if home is None:
        raise UsageError(
            f"{target} is not a file, and {ctx.home} is not an appliance home to find the image in",
            hint="pass the RVA file written by 'stella gate --out', or --home",
        )
    digest, found = attached_verdicts(home, target)
    if subject is not None and subject != digest:
        raise UsageError(f"--artifact {subject} is not the image {target} ({digest})")
    referrer, data = found[0]
    source = f"{target} referrer {referrer}"
    return _own_verdict(ctx, data, policy, source, digest, trusted, authorities, attached=True)


def _verdict_text(v: RvaVerification) -> str:
    lines = [f"OK  {v.source}"]
    subjects = ", ".join(f"{s.name} {s.sha256}" for s in v.statement.subjects)
    lines.append(f"statement {v.statement_digest} ({v.statement.predicate_type})")
    lines.append(f"subject {subjects}")
    lines.append(f"signed by {v.signer} key {v.keyid}")
    if v.is_verdict:
        p = v.predicate
        lines.append(f"verdict {p['verdict']} at {p['evaluationTime']}")
        checked = sum(1 for e in v.evidence if e.checked)
        lines.append(
            f"evidence {checked} of {len(v.evidence)} checked against the pinned digests"
            + ("" if checked else " (no evidence store here: digests only)")
        )
    if v.signed_at is not None:
        lines.append(v.signed_at.describe())
    if v.audit is not None:
        lines.append(f"audit record {v.audit.seq} at {v.audit.time}; audit chain verified")
    return "\n".join(lines)


def _sigstore_text(r: SigstoreResult, source: str) -> str:
    lines = [f"OK  {source} ({r.media_type}, {r.kind.value})", f"signed by {r.signer}"]
    if r.artifact:
        lines.append(f"artifact {r.artifact}")
    if r.statement is not None:
        lines.append(f"predicateType {r.statement.predicate_type}")
    for t in r.tlog:
        proofs = [
            name
            for name, ok in (
                ("inclusion proof", t.inclusion_proof),
                ("signed checkpoint", t.checkpoint),
                ("signed entry timestamp", t.signed_entry_timestamp),
            )
            if ok
        ]
        lines.append(
            f"transparency log entry {t.log_index} ({t.kind}) integrated at {t.integrated_time}: "
            + ", ".join(proofs)
        )
    return "\n".join(lines)


@click.command("verify")
@click.argument("target", metavar="IMAGE|FILE")
@_key_option
@_trust_policy_option
@click.option("--certificate-identity", help="Keyless: the signer identity (SAN) required.")
@click.option("--certificate-oidc-issuer", help="Keyless: the OIDC issuer required.")
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Sigstore trusted root (default: the public-good root shipped with the appliance).",
)
@click.option("--artifact", help="What was signed: FILE or sha256:DIGEST.")
@click.option(
    "--require-tlog", is_flag=True, help="Key-signed bundles must carry a transparency-log entry."
)
@click.option(
    "--notation",
    is_flag=True,
    help="Verify IMAGE's newest verdict by its Notary Project signature, against a Notation "
    "trust store and trust policy (--trust-policy is then Notation's trustpolicy.json).",
)
@click.option(
    "--trust-store",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="With --notation: Notation trust store directory (x509/ca/NAME/*.pem). "
    "Default: the appliance's own CA.",
)
@pass_ctx
def verify_cmd(
    ctx: CliContext,
    target: str,
    keys: tuple[Path, ...],
    trust_policy: Path | None,
    certificate_identity: str | None,
    certificate_oidc_issuer: str | None,
    trusted_root: Path | None,
    artifact: str | None,
    require_tlog: bool,
    notation: bool,
    trust_store: Path | None,
) -> None:
    """Verify a signed verdict (IMAGE's newest, or FILE) or a standard Sigstore bundle,
    offline."""
    if notation or trust_store is not None:
        _verify_notation(ctx, target, notation, trust_store, trust_policy, bool(keys))
        return
    art = Artifact.parse(artifact) if artifact else None
    if certificate_identity or certificate_oidc_issuer:
        if not (certificate_identity and certificate_oidc_issuer):
            raise UsageError(
                "keyless verification needs both --certificate-identity and "
                "--certificate-oidc-issuer"
            )
        path = Path(target)
        result = verify_keyless(
            _read(path),
            identity=certificate_identity,
            issuer=certificate_oidc_issuer,
            artifact=art,
            trusted_root=trusted_root,
            source=str(path),
        )
        ctx.emit({**result.to_dict(), "source": str(path)}, _sigstore_text(result, str(path)))
        return
    path = Path(target)
    data = read_bundle_file(path) if path.is_file() else None
    if data is not None and classify(data, str(path)) is BundleForm.STANDARD:
        if len(keys) != 1 or trust_policy is not None:
            raise UsageError(
                f"{path} is a standard Sigstore bundle: pass exactly one --key PUB, or "
                "--certificate-identity and --certificate-oidc-issuer for a keyless one"
            )
        result = verify_with_key(
            data,
            PublicKey.load(keys[0]),
            artifact=art,
            trusted_root=trusted_root,
            require_tlog=require_tlog,
            source=str(path),
        )
        ctx.emit({**result.to_dict(), "source": str(path)}, _sigstore_text(result, str(path)))
        return
    policy = _policy(ctx, keys, trust_policy)
    logs = tlog.logs_of_trusted_root(trusted_root) if trusted_root else _home_logs(ctx)
    authorities = tsa.authorities_of_trusted_root(trusted_root) if trusted_root else []
    verified, _ = _target(ctx, target, policy, art.digest if art else None, logs, authorities)
    doc, text = verified.to_dict(), _verdict_text(verified)
    if data is not None and logs:
        logged = tlog.check_logged(data, logs, source=str(path))
        doc["transparency"] = logged
        text += "\n" + (
            f"logged: entry {logged['logIndex']} of {logged['log']}; inclusion proof and "
            f"checkpoint (size {logged['treeSize']}) verified"
            if logged["inclusionProof"]
            else "not logged in a transparency log trusted here"
        )
    ctx.emit(doc, text)


def _home_logs(ctx: CliContext) -> list[Verifier]:
    home = _home(ctx)
    return known_logs(home) if home is not None else []


def _verify_notation(
    ctx: CliContext,
    target: str,
    notation: bool,
    trust_store: Path | None,
    trust_policy: Path | None,
    keys: bool,
) -> None:
    if not notation:
        raise UsageError("--trust-store goes with --notation")
    if keys:
        raise UsageError(
            "--key does not go with --notation", hint="Notation trusts certificates, not keys"
        )
    home = _home(ctx)
    if home is None:
        raise UsageError(
            f"--notation verifies an image in the appliance store, and {ctx.home} is not an "
            "appliance home",
            hint="pass --home",
        )
    if trust_store is None or trust_policy is None:
        store, policy = notation_service.own_trust(home)  # the appliance's own CA and identity
    if trust_store is not None:
        store = TrustStore.load(trust_store)
    if trust_policy is not None:
        policy = TrustPolicyDocument.load(trust_policy)
    result = notation_service.verify_image(
        home, target, store=store, policy=policy, now=datetime.now(UTC)
    )
    v = result.verification
    lines = [
        f"OK  {target} verdict {result.referrer.digest}: Notary Project signature "
        f"{result.signature.digest}",
        f"trust policy {v.policy!r} at level {v.level}",
        f"signed by {v.signer}",
        f"verdict {result.statement.predicate.get('verdict')} at "
        f"{result.statement.predicate.get('evaluationTime')}",
        *(f"logged: {line}" for line in v.logged),
    ]
    ctx.emit(result.to_dict(), "\n".join(lines))


@click.command("explain")
@click.argument("target", metavar="IMAGE|FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in explaining.Format]),
    default=explaining.Format.TEXT.value,
    show_default=True,
)
@_key_option
@_trust_policy_option
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The appliance's log keys ('stella log trusted-root') and any RFC 3161 "
    "time-stamping authorities, to prove when the verdict was signed. Default: the logs of "
    "--home.",
)
@pass_ctx
def explain_cmd(
    ctx: CliContext,
    target: str,
    fmt: str,
    keys: tuple[Path, ...],
    trust_policy: Path | None,
    trusted_root: Path | None,
) -> None:
    """Explain a verified verdict: decision, policy, evidence, reasons, blocking chains, VEX,
    unknowns and assumptions."""
    policy = _policy(ctx, keys, trust_policy)
    logs = tlog.logs_of_trusted_root(trusted_root) if trusted_root else _home_logs(ctx)
    authorities = tsa.authorities_of_trusted_root(trusted_root) if trusted_root else []
    verified, blobs = _target(ctx, target, policy, None, logs, authorities)
    explanation = explaining.build(verified, blobs)
    path = Path(target)
    logged = (
        tlog.check_logged(_read(path), logs, source=str(path)) if logs and path.is_file() else None
    )
    if ctx.json:
        signed = verified.signed_at.to_dict() if verified.signed_at else None
        extra = {"transparency": logged} if logged else {}
        ctx.emit({**explanation.to_dict(), **extra, "signingTime": signed})
        return
    click.echo(explaining.render(explanation, explaining.Format(fmt)), nl=False)
    if logged and logged["inclusionProof"] and fmt == explaining.Format.TEXT.value:
        click.echo(
            f"Transparency log: entry {logged['logIndex']} of {logged['log']}, proven under "
            f"the checkpoint of size {logged['treeSize']} (root {logged['rootHash'][:16]}…)"
        )
    if verified.signed_at is not None and fmt == explaining.Format.TEXT.value:
        click.echo(f"Signature: {verified.signed_at.describe()}")


def _diff_text(result: Any) -> str:
    lines = [
        f"{result.outcome.value}  recorded {result.recorded}, replayed {result.replayed}",
        f"inputs: snapshot {result.inputs['knowledgeSnapshot']}, policy {result.inputs['policy']}"
        f", evaluation time {result.inputs['evaluationTime']}",
    ]
    for d in result.diffs:
        recorded = canonical.dumps(d.recorded).decode() if d.missing != "recorded" else "(absent)"
        replayed = canonical.dumps(d.replayed).decode() if d.missing != "replayed" else "(absent)"
        lines.append(f"  {d.path}: recorded {recorded} | replayed {replayed}")
    if result.signed_at is not None:
        lines.append(result.signed_at.describe())
    return "\n".join(lines)


@click.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--policy",
    "policy_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Policy bundle directory, when the verdict was made with 'gate --policy DIR'.",
)
@_key_option
@_trust_policy_option
@pass_ctx
@click.pass_context
def replay_cmd(
    click_ctx: click.Context,
    ctx: CliContext,
    file: Path,
    policy_dir: Path | None,
    keys: tuple[Path, ...],
    trust_policy: Path | None,
) -> None:
    """Re-run the evaluation of the verdict in FILE from the inputs it pins: MATCH or DIFF."""
    home = Home(ctx.home).require()
    policy = _policy(ctx, keys, trust_policy)
    result = replay(home, _read(file), policy, source=str(file), policy_dir=policy_dir)
    ctx.emit(result.to_dict(), _diff_text(result))
    if result.outcome is ReplayOutcome.DIFF:
        click_ctx.exit(EXIT_DIFF)


@click.command("export-audit-package")
@click.argument("target", metavar="IMAGE|FILE")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="FILE.zip"
)
@click.option(
    "--policy",
    "policy_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Policy bundle directory, when the verdict was made with 'gate --policy DIR'.",
)
@pass_ctx
def export_package_cmd(ctx: CliContext, target: str, out: Path, policy_dir: Path | None) -> None:
    """Write one ZIP proving a verdict (IMAGE's newest, or FILE) to an auditor."""
    home = Home(ctx.home).require()
    policy = TrustPolicy.of_ring(load_ring(home))
    path = Path(target)
    if path.is_file():
        data = _read(path)
    else:
        _, found = attached_verdicts(home, target)
        data = found[0][1]
    package = export_package(home, data, policy, policy_dir=policy_dir)
    try:
        out.write_bytes(package)
    except OSError as e:
        raise UsageError(f"{out}: cannot write: {e.strerror}") from e
    digest = Digest.of_bytes(package)
    ctx.emit(
        {"out": str(out), "digest": str(digest), "size": len(package)},
        f"wrote {out} ({len(package)} bytes, {digest})",
    )


@click.command("verify-audit-package")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The appliance's public key (PEM), obtained independently of the package.",
)
@click.option(
    "--trust-policy",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Instead of --key: the appliance's keys with their validity windows "
    "('stella keys export-public --keys-out'), for a verdict made before a rotation.",
)
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The appliance's log keys ('stella log trusted-root') and any RFC 3161 "
    "time-stamping authorities, obtained independently, to prove when the verdict was signed. "
    "Default: the package's keys/tlog.vkey, as its signed audit head vouches for it (not when "
    "a revoked key signed that head).",
)
@pass_ctx
def verify_package_cmd(
    ctx: CliContext,
    file: Path,
    key: Path | None,
    trust_policy: Path | None,
    trusted_root: Path | None,
) -> None:
    """Check an audit package with only the package and a public key: no home, no network."""
    if (key is None) == (trust_policy is None):
        raise UsageError(
            "pass exactly one of --key PUB and --trust-policy FILE",
            hint="the appliance's public key or its exported keys, obtained independently",
        )
    public: PublicKey | TrustPolicy = (
        PublicKey.load(key) if key is not None else TrustPolicy.load(trust_policy)  # type: ignore[arg-type]
    )
    try:
        fh = open(file, "rb")  # noqa: SIM115 - a with block below; members are read one by one
    except OSError as e:
        raise UsageError(f"{file}: cannot read: {e.strerror}") from e
    with fh:
        logs = tlog.logs_of_trusted_root(trusted_root) if trusted_root else None
        authorities = tsa.authorities_of_trusted_root(trusted_root) if trusted_root else []
        report = verify_package(fh, public, source=str(file), logs=logs, authorities=authorities)
    v = report.verification
    text = "\n".join(
        [
            f"OK  {file}: {v.predicate['verdict']} for {v.predicate['subject']['name']} "
            f"{v.predicate['subject']['digest']} at {v.predicate['evaluationTime']}",
            *(f"  ok: {c}" for c in CHECKS),
            *([f"  {v.signed_at.describe()}"] if v.signed_at else []),
        ]
    )
    ctx.emit(report.to_dict(), text)
