"""``stella init``, ``stella keys generate|export-public|list|rotate|revoke``,
``stella trust add|list|rotate`` and ``stella trust upstream add|list|remove``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance.auditor.trust_policy import TrustPolicy
from appliance.commands.tenants import adopt
from appliance.home import Home
from appliance.intake.trust_store import TrustStore
from appliance.keyring import load_ring, revoke, rotate, rotation_days, rotation_plan
from appliance.notation import ca as notation_ca
from appliance.sigstore.upstream import PolicyStore, Rule, UpstreamPolicyError
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles import canonical
from bundles.clikit import CliContext, pass_ctx
from bundles.digest import Digest
from bundles.errors import UsageError
from bundles.keys import (
    KeyEntry,
    KeyRingError,
    KeyType,
    PublicKey,
    format_instant,
    parse_instant,
    passphrase_from_env,
)
from bundles.pkcs11_uri import PIN_ENV, is_pkcs11_uri
from bundles.signer import close_signer, generate_signer

_SIGNER_HELP = (
    "pkcs11:token=…;object=…?module-path=…[&pin-source=file:…] to keep the key in a PKCS#11 "
    f"token (the PIN comes from pin-source or ${PIN_ENV}, never from the command line)"
)


def _key_type_for(signer: str | None, key_type: str | None) -> KeyType:
    chosen = KeyType(key_type) if key_type else KeyType.ECDSA_P256
    if signer is not None and is_pkcs11_uri(signer) and chosen is not KeyType.ECDSA_P256:
        raise UsageError(
            f"--key-type {chosen} does not go with a pkcs11: signer",
            hint="a token key is always ECDSA P-256: leave --key-type out",
        )
    return chosen


@click.command("init")
@click.option(
    "--key-type",
    type=click.Choice([t.value for t in KeyType]),
    default=None,
    help="Algorithm of the appliance key (signs VEX and verdicts)  [default: ecdsa-p256].",
)
@click.option("--signer", default=None, metavar="URI", help=_SIGNER_HELP + ".")
@click.option(
    "--tenant",
    default=None,
    metavar="NAME",
    help="Create this tenant of the home (its own stores and key), as the global --tenant.",
)
@pass_ctx
@click.pass_context
def init_cmd(
    click_ctx: click.Context,
    ctx: CliContext,
    key_type: str | None,
    signer: str | None,
    tenant: str | None,
) -> None:
    """Create the appliance home and its signing key (idempotent); with --tenant, a tenant
    of an existing home, with a key of its own."""
    adopt(click_ctx, ctx, tenant, where="init --tenant")
    home = Home(ctx.home)
    created = home.init(_key_type_for(signer, key_type), signer=signer)
    key = home.public_key()
    reference = home.signer_reference()
    ctx.emit(
        {
            "home": str(home.root),
            "tenant": home.tenant,
            "created": created,
            "keyid": key.keyid,
            "keyType": str(key.key_type),
            "signer": reference or str(home.appliance_key),
        },
        lambda: (
            f"{'created' if created else 'already initialized'}: {home.root}"
            + (f" (tenant {home.tenant})" if home.tenant else "")
            + "\n"
            f"appliance key {key.key_type} keyid {key.keyid[:16]}"
            + (f" in {reference}" if reference else "")
            + "\nnext: 'stella trust add trust-root.json' with the mirror's trust root"
        ),
    )


@click.group("keys")
def keys_group() -> None:
    """The appliance's own signing key."""


@keys_group.command("generate")
@click.option(
    "--signer",
    required=True,
    metavar="URI|FILE",
    help=_SIGNER_HELP + "; or the path of a new PEM key file (its .pub is written beside it).",
)
@click.option(
    "--key-type",
    type=click.Choice([t.value for t in KeyType]),
    default=None,
    help="Algorithm of a key file  [default: ecdsa-p256; a token key is always ecdsa-p256].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the new public key (PEM) here.",
)
@pass_ctx
def keys_generate_cmd(ctx: CliContext, signer: str, key_type: str | None, out: Path | None) -> None:
    """Create a signing key: inside a PKCS#11 token (sensitive, never extractable) or in a
    key file. Existing keys are never replaced. The home's own key is not changed."""
    created = generate_signer(
        signer, _key_type_for(signer, key_type), passphrase=passphrase_from_env()
    )
    public = created.public_key
    close_signer(created)
    if out is not None:
        public.save(out)
    ctx.emit(
        {
            "signer": signer,
            "keyid": public.keyid,
            "keyType": str(public.key_type),
            "out": str(out) if out else None,
        },
        f"generated {public.key_type} key keyid {public.keyid} in {signer}"
        + (f"\npublic key: {out}" if out else ""),
    )


@keys_group.command("export-public")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--keys-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every key the appliance has used or will use, each with its validFor "
    "window (a trust policy: 'stella verify --trust-policy FILE').",
)
@pass_ctx
def export_public_cmd(ctx: CliContext, out: Path, keys_out: Path | None) -> None:
    """Write the appliance's public key (PEM), for verifiers and auditors."""
    home = Home(ctx.home)
    key = home.public_key()
    key.save(out)
    count = None
    if keys_out is not None:
        policy = TrustPolicy.of_ring(load_ring(home))
        try:
            keys_out.write_bytes(canonical.dumps(policy.to_dict()) + b"\n")
        except OSError as e:
            raise UsageError(f"{keys_out}: cannot write: {e.strerror}") from e
        count = len(policy.rules)
    ctx.emit(
        {
            "out": str(out),
            "keyid": key.keyid,
            "keyType": str(key.key_type),
            "keysOut": str(keys_out) if keys_out else None,
            "keys": count,
        },
        f"{out}: {key.key_type} public key, keyid {key.keyid}"
        + (f"\n{keys_out}: {count} keys with their validity windows" if keys_out else ""),
    )


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, where=option)
    except KeyRingError as e:
        raise UsageError(e.message, hint=e.hint) from e


def _state(entry: KeyEntry, now: datetime) -> str:
    if entry.revoked is not None and now >= entry.revoked.at:
        return "revoked"
    if entry.valid_for.start is not None and now < entry.valid_for.start:
        return "next"
    if entry.valid_for.end is not None and now >= entry.valid_for.end:
        return "retired"
    return "active"


def _entry_info(entry: KeyEntry, now: datetime) -> dict[str, Any]:
    return {**entry.public_dict(), "state": _state(entry, now)}


def _entry_line(info: Mapping[str, Any]) -> str:
    window = info["validFor"]
    revoked = info.get("revoked")
    return (
        f"{info['state']:<8} {info['keyid'][:16]}  {info['keyType']:<10} "
        f"validFor [{window.get('start', 'beginning')}, {window.get('end', 'open')})"
        + (f"  revoked at {revoked['at']}: {revoked['reason']}" if revoked else "")
    )


@keys_group.command("list")
@pass_ctx
def keys_list_cmd(ctx: CliContext) -> None:
    """Show every key of the appliance's key ring with its validity window and state
    (active, next, retired, revoked), and when the next rotation is due."""
    home = Home(ctx.home).require()
    now = datetime.now(UTC)
    infos = [_entry_info(e, now) for e in load_ring(home).entries]
    plan = rotation_plan(home, now=now)
    due = format_instant(plan.due)
    ctx.emit(
        {"keys": infos, "rotationDue": due, "rotationDays": rotation_days(home)},
        "\n".join([*(_entry_line(i) for i in infos), f"next rotation due {due}"]),
    )


@keys_group.command("rotate")
@click.option(
    "--signer",
    default=None,
    metavar="URI",
    help=_SIGNER_HELP + ". Default: a new key file (keys/next.key until the switch).",
)
@click.option(
    "--key-type",
    type=click.Choice([t.value for t in KeyType]),
    default=None,
    help="Algorithm of a new key file  [default: ecdsa-p256].",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="RFC 3339 time the new key takes over signing  [default: now].",
)
@pass_ctx
def keys_rotate_cmd(
    ctx: CliContext, signer: str | None, key_type: str | None, at: str | None
) -> None:
    """Create the next appliance key and publish it with a validity window starting at
    --at; the current key signs until then and verifies what it signed for ever after."""
    home = Home(ctx.home).require()
    chosen = _key_type_for(signer, key_type)
    if chosen is not KeyType.ECDSA_P256 and notation_ca.enabled(home):
        raise UsageError(
            f"--key-type {chosen}: this home signs verdicts the Notary Project way too, "
            "which needs an ECDSA P-256 key",
            hint="leave --key-type out",
        )
    done = rotate(home, at=_time(at, "--at"), signer=signer, key_type=chosen)
    now = datetime.now(UTC)
    infos = [_entry_info(e, now) for e in (done.previous, done.next_key)]
    ctx.emit(
        {"previous": infos[0], "next": infos[1], "switched": done.switched},
        "\n".join(_entry_line(i) for i in infos)
        + (
            "\nsigning with the new key now"
            if done.switched
            else f"\nthe new key signs from {infos[1]['validFor']['start']}"
        )
        + "\nnext: give auditors 'stella keys export-public --keys-out FILE'",
    )


@keys_group.command("revoke")
@click.argument("keyid")
@click.option(
    "--at",
    "at",
    required=True,
    metavar="TIME",
    help="RFC 3339 time from which the key's signatures are refused (when it was stolen).",
)
@click.option("--reason", required=True, help="Why: 'token stolen', 'key file leaked', ….")
@pass_ctx
def keys_revoke_cmd(ctx: CliContext, keyid: str, at: str, reason: str) -> None:
    """Revoke a key reported compromised: what it signed from --at on is refused by
    'stella verify'; earlier signatures stay valid. Then rotate ('stella keys rotate')."""
    home = Home(ctx.home).require()
    when = _time(at, "--at")
    assert when is not None
    entry = revoke(home, keyid, at=when, reason=reason)
    info = _entry_info(entry, datetime.now(UTC))
    ctx.emit(
        info,
        _entry_line(info)
        + "\nnext: 'stella keys rotate' if it was the signing key, then give auditors "
        "'stella keys export-public --keys-out FILE'",
    )


@click.group("trust")
def trust_group() -> None:
    """Trust roots: which mirrors may sign the bundles this appliance imports."""


def _store(ctx: CliContext) -> TrustStore:
    return TrustStore(Home(ctx.home).require().trust)


def _line(info: dict[str, object]) -> str:
    return (
        f"{info['channel']:<16} v{info['version']:<4} expires {info['expires']}  "
        f"bundle keys {info['bundleThreshold']} of {len(info['bundleKeys'])}  "  # type: ignore[arg-type]
        f"root keys {info['rootThreshold']} of {len(info['rootKeys'])}"  # type: ignore[arg-type]
    )


@trust_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_ctx
def trust_add_cmd(ctx: CliContext, file: Path) -> None:
    """Trust a mirror's trust-root.json for its channel (first time only)."""
    now = datetime.now(UTC)
    root, added = _store(ctx).add(file, now=now)
    info = dict(root.describe())
    if added:
        record_decision(
            Home(ctx.home),
            AuditAction.TRUST_ADD,
            f"channel {root.channel}",
            command="trust add",
            time=now,
            inputs={"file": str(file), "digest": str(Digest.of_bytes(root.to_bytes()))},
            result=info,
        )
    ctx.emit(
        {**info, "added": added}, ("trusted: " if added else "already trusted: ") + _line(info)
    )


@trust_group.command("rotate")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@pass_ctx
def trust_rotate_cmd(ctx: CliContext, files: tuple[Path, ...]) -> None:
    """Accept newer trust-root versions (each signed by the current and its own root keys)."""
    now = datetime.now(UTC)
    chain = _store(ctx).rotate(list(files), now=now)
    infos = [dict(r.describe()) for r in chain]
    for root, info in zip(chain, infos, strict=True):
        record_decision(
            Home(ctx.home),
            AuditAction.TRUST_ROTATE,
            f"channel {root.channel}",
            command="trust rotate",
            time=now,
            inputs={"digest": str(Digest.of_bytes(root.to_bytes()))},
            result=info,
        )
    ctx.emit({"rotated": infos}, "\n".join("rotated to: " + _line(i) for i in infos))


@trust_group.command("list")
@pass_ctx
def trust_list_cmd(ctx: CliContext) -> None:
    """Show the trusted channels and their roots."""
    infos = [dict(r.describe()) for r in _store(ctx).all()]
    ctx.emit({"roots": infos}, "\n".join(_line(i) for i in infos) or "no trust roots yet")


@trust_group.group("upstream")
def trust_upstream_group() -> None:
    """Who may sign the upstream images mirrored in (checked at import)."""


def _rule_line(info: dict[str, object]) -> str:
    keyless = info.get("keyless")
    signer = (
        f"key {info['keyid']}"
        if keyless is None
        else f"keyless {keyless['identity']} ({keyless['issuer']})"  # type: ignore[index]
    )
    return f"{info['repository']:<32} {'required' if info['required'] else 'optional':<9} {signer}"


@trust_upstream_group.command("add")
@click.option("--repository", required=True, help="registry/repository pattern (* wildcards).")
@click.option("--key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--certificate-identity", "identity", default=None)
@click.option("--certificate-oidc-issuer", "issuer", default=None)
@click.option(
    "--required", is_flag=True, help="Refuse imports of matching images it does not verify."
)
@pass_ctx
def trust_upstream_add_cmd(
    ctx: CliContext,
    repository: str,
    key: Path | None,
    identity: str | None,
    issuer: str | None,
    required: bool,
) -> None:
    """Trust a key (--key PUB) or a keyless identity (--certificate-identity ID
    --certificate-oidc-issuer URL) to sign images of the repositories matching PATTERN."""
    if key is not None and (identity or issuer):
        raise UsageError(
            "--key and --certificate-identity/--certificate-oidc-issuer exclude each other",
            hint="add one rule per signer",
        )
    home = Home(ctx.home).require()
    public = PublicKey.load(key) if key is not None else None
    try:
        rule = Rule(repository, key=public, identity=identity, issuer=issuer, required=required)
    except UpstreamPolicyError as e:  # what the options say is not a rule
        raise UsageError(e.message, hint=e.hint) from e
    store = PolicyStore(home.trust)
    info = rule.describe()
    with store.locked():  # load, change, save: a concurrent change is not lost
        policy, changed = store.load().with_rule(rule)
        if changed:
            now = datetime.now(UTC)
            store.save(policy)
            record_decision(
                home,
                AuditAction.TRUST_ADD,
                f"upstream {rule.name}",
                command="trust upstream add",
                time=now,
                inputs={"key": str(key) if key else None, "policy": str(policy.digest)},
                result=info,
            )
    ctx.emit(
        {**info, "added": changed, "policy": str(policy.digest)},
        ("trusted upstream: " if changed else "already trusted upstream: ") + _rule_line(info),
    )


@trust_upstream_group.command("list")
@pass_ctx
def trust_upstream_list_cmd(ctx: CliContext) -> None:
    """Show the upstream signer rules."""
    policy = PolicyStore(Home(ctx.home).require().trust).load()
    infos = [r.describe() for r in policy.rules]
    ctx.emit(
        {"rules": infos, "policy": str(policy.digest)},
        "\n".join(_rule_line(i) for i in infos) or "no upstream signer rules",
    )


@trust_upstream_group.command("remove")
@click.argument("pattern")
@pass_ctx
def trust_upstream_remove_cmd(ctx: CliContext, pattern: str) -> None:
    """Remove every upstream signer rule whose repository pattern is exactly PATTERN."""
    home = Home(ctx.home).require()
    store = PolicyStore(home.trust)
    with store.locked():  # load, change, save: a concurrent change is not lost
        current = store.load()
        policy, removed = current.without(pattern)
        if not removed:
            known = ", ".join(sorted({r.repository for r in current.rules})) or "none"
            raise UpstreamPolicyError(
                f"no upstream signer rule has the repository pattern {pattern!r}",
                hint=f"known patterns: {known}",
            )
        now = datetime.now(UTC)
        store.save(policy)
        infos = [r.describe() for r in removed]
        record_decision(
            home,
            AuditAction.TRUST_REMOVE,
            f"upstream {pattern}",
            command="trust upstream remove",
            time=now,
            inputs={"pattern": pattern, "policy": str(policy.digest)},
            result={"removed": infos},
        )
    ctx.emit(
        {"removed": infos, "policy": str(policy.digest)},
        "\n".join("removed: " + _rule_line(i) for i in infos),
    )


@keys_group.group("notation")
def keys_notation_group() -> None:
    """Notary Project signatures of verdicts: the appliance's own small CA (docs/keys.md)."""


@keys_notation_group.command("init")
@click.option(
    "--subject",
    default=None,
    metavar="DN",
    help="Subject of the signing certificates, e.g. 'C=DE, ST=Berlin, O=Example, CN=gate-1' "
    "(C, ST and O required)  [default: kept, else "
    "'C=ZZ, ST=Enclave, O=Stella Ops, OU=appliance, CN=stella-appliance'].",
)
@pass_ctx
def keys_notation_init_cmd(ctx: CliContext, subject: str | None) -> None:
    """Create the appliance's Notation CA (root key and certificate in keys/notation/) and
    turn Notary Project signing on: every verdict the gate signs then also carries a Notary
    Project signature, attached as a referrer of the verdict."""
    home = Home(ctx.home).require()
    now = datetime.now(UTC)
    signer = home.signing_key(now=now)
    notation_ca.require_ecdsa(signer)  # before anything is turned on
    root = notation_ca.init_ca(home, now=now, subject_text=subject)
    leaf = notation_ca.chain_for(home, signer, now=now)[0]
    ctx.emit(
        {
            "root": root.subject.rfc4514_string(),
            "rootFingerprint": notation_ca.fingerprint(root),
            "signingCertificate": leaf.subject.rfc4514_string(),
            "enabled": True,
        },
        f"Notation CA {root.subject.rfc4514_string()} (sha256 {notation_ca.fingerprint(root)})\n"
        f"signing certificate {leaf.subject.rfc4514_string()}\n"
        "every verdict is now also signed the Notary Project way\n"
        "next: 'stella keys notation export --out DIR' for verifiers",
    )


@keys_notation_group.command("export")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write truststore/ and trustpolicy.json into (Notation's layout).",
)
@pass_ctx
def keys_notation_export_cmd(ctx: CliContext, out: Path) -> None:
    """Write a Notation trust store (the appliance's root) and a trust policy trusting the
    appliance's signing identity, for 'stella verify --notation' and the notation CLI."""
    home = Home(ctx.home).require()
    files = notation_ca.trust_files(home)
    for relative, data in files.items():
        target = out / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as e:
            raise UsageError(f"{target}: cannot write: {e.strerror}") from e
    ctx.emit(
        {"out": str(out), "files": sorted(files)},
        "\n".join(f"wrote {out / name}" for name in sorted(files)),
    )
