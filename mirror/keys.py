"""``stella-mirror keys``: the connected side's signing keys and the trust root appliances import.

``keys generate --out DIR`` writes:

- ``signing.key`` / ``signing.pub``: signs bundles (the trust root's bundle role);
- ``root.key`` / ``root.pub``: signs trust-root rotations only; keep it offline, apart from
  the mirror, so that a stolen signing key can be revoked by a new root;
- ``trust-root.json``: TUF root metadata (version 1) naming both, for ``stella trust add``.

``keys generate --out DIR --signer pkcs11:…`` keeps the bundle signing key in a PKCS#11 token
instead (generated there, never extractable): ``signing.key`` is not written; ``signing.uri``
holds the URI (never the PIN), and ``export --key DIR/signing.uri`` (or ``--key pkcs11:…``)
signs with the token. The root key stays a file, to be kept offline apart from the mirror.

``keys rotate --keys DIR [--signing] [--root]`` writes trust root version N + 1: with a new
signing key (the old one is revoked), a new root key (the new root is signed by the old and the
new root key, as TUF requires), or neither (only the expiry moves). Retired keys move to
``DIR/retired/``; every version stays in ``DIR/history/`` so an appliance that missed one can
still walk the chain with ``stella trust rotate``.

Private keys are encrypted when ``STELLA_KEY_PASSPHRASE`` is set, and written with mode 0600.
Nothing is overwritten: an existing key is a decision nobody should undo by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError
from bundles.keys import KeyType, PrivateKey, passphrase_from_env
from bundles.pkcs11_uri import is_pkcs11_uri, parse_pkcs11_uri
from bundles.signer import Signer, close_signer, generate_signer
from bundles.trust import DEFAULT_CHANNEL, TrustRoot, sign_root

SIGNING_KEY = "signing.key"
SIGNING_PUB = "signing.pub"
ROOT_KEY = "root.key"
ROOT_PUB = "root.pub"
TRUST_ROOT = "trust-root.json"
SIGNING_URI = "signing.uri"


def generate(
    out: Path,
    *,
    key_type: KeyType,
    channel: str,
    validity: timedelta,
    now: datetime,
    passphrase: bytes | None,
    signer: str | None = None,
) -> TrustRoot:
    """Write a fresh key set and its version-1 trust root into ``out``; with ``signer`` (a
    ``pkcs11:`` URI) the signing key is generated in that token instead of a file."""
    names = (SIGNING_KEY, SIGNING_PUB, SIGNING_URI, ROOT_KEY, ROOT_PUB, TRUST_ROOT)
    existing = [n for n in names if (out / n).exists()]
    if existing:
        raise UsageError(
            f"{out}: already holds {', '.join(existing)}",
            hint="choose an empty directory; existing keys are never overwritten",
        )
    if signer is not None:
        if not is_pkcs11_uri(signer):
            raise UsageError(
                f"--signer {signer!r} is not a pkcs11: URI",
                hint="leave --signer out to write signing.key",
            )
        if key_type is not KeyType.ECDSA_P256:
            raise UsageError(
                f"--type {key_type} does not go with a pkcs11: signer",
                hint="a token key is always ECDSA P-256: leave --type out",
            )
        parse_pkcs11_uri(signer)  # refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    signing: Signer = (
        generate_signer(signer) if signer is not None else PrivateKey.generate(key_type)
    )
    close_signer(signing)  # only its public key is needed from here on
    root = PrivateKey.generate(key_type)
    trust = TrustRoot.create(
        [root], [signing.public_key], now=now, channel=channel, validity=validity
    )
    if isinstance(signing, PrivateKey):
        signing.save(out / SIGNING_KEY, passphrase)
    else:
        (out / SIGNING_URI).write_text(f"{signer}\n")
    signing.public_key.save(out / SIGNING_PUB)
    root.save(out / ROOT_KEY, passphrase)
    root.public_key.save(out / ROOT_PUB)
    trust.save(out / TRUST_ROOT)
    _keep_history(out, trust)
    return trust


def _keep_history(directory: Path, trust: TrustRoot) -> None:
    (directory / "history").mkdir(exist_ok=True)
    trust.save(directory / "history" / f"trust-root.v{trust.version}.json")


def _retire(directory: Path, name: str, keyid: str) -> None:
    retired = directory / "retired"
    retired.mkdir(exist_ok=True)
    stem, suffix = name.split(".")
    for ext in (suffix, "uri", "pub"):  # a token key's .uri, so export cannot pick it up again
        src = directory / f"{stem}.{ext}"
        if src.exists():
            src.replace(retired / f"{stem}-{keyid[:16]}.{ext}")


def rotate(
    directory: Path,
    *,
    new_signing: bool,
    new_root: bool,
    validity: timedelta,
    now: datetime,
    passphrase: bytes | None,
) -> TrustRoot:
    """Write trust root version N + 1 into ``directory`` (see the module docstring)."""
    current = TrustRoot.load(directory / TRUST_ROOT)
    old_root = PrivateKey.load(directory / ROOT_KEY, passphrase)
    if old_root.keyid not in current.root_keys:
        raise UsageError(
            f"{directory / ROOT_KEY}: key {old_root.keyid[:16]} is not a root key of "
            f"{directory / TRUST_ROOT} version {current.version}"
        )
    key_type = old_root.key_type
    signing = PrivateKey.generate(key_type) if new_signing else None
    root = PrivateKey.generate(key_type) if new_root else None
    unsigned = current.successor(
        now=now,
        root_keys=[root.public_key] if root else None,
        bundle_keys=[signing.public_key] if signing else None,
        root_threshold=1 if root else None,
        bundle_threshold=1 if signing else None,
        validity=validity,
    )
    signers = [old_root] + ([root] if root else [])
    trust = sign_root(unsigned, signers, source=str(directory / TRUST_ROOT))
    current.check_successor(TrustRoot.from_bytes(trust.to_bytes()), now=now)
    if signing:
        _retire(directory, SIGNING_KEY, next(iter(current.bundle_keys)))
        signing.save(directory / SIGNING_KEY, passphrase)
        signing.public_key.save(directory / SIGNING_PUB)
    if root:
        _retire(directory, ROOT_KEY, old_root.keyid)
        root.save(directory / ROOT_KEY, passphrase)
        root.public_key.save(directory / ROOT_PUB)
    trust.save(directory / TRUST_ROOT)
    _keep_history(directory, trust)
    return trust


@click.group("keys")
def keys_group() -> None:
    """Signing keys and the trust root for appliances."""


@keys_group.command("generate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for signing.key, root.key, their .pub files and trust-root.json.",
)
@click.option(
    "--type",
    "key_type",
    type=click.Choice([t.value for t in KeyType]),
    default=KeyType.ECDSA_P256.value,
    show_default=True,
    help="Key algorithm.",
)
@click.option("--channel", default=DEFAULT_CHANNEL, show_default=True, help="Appliance channel.")
@click.option(
    "--validity-days",
    type=click.IntRange(1, 3650),
    default=365,
    show_default=True,
    help="Days until the trust root expires.",
)
@click.option(
    "--signer",
    default=None,
    metavar="URI",
    help="pkcs11:token=…;object=…?module-path=…[&pin-source=file:…]: generate the bundle "
    "signing key in this PKCS#11 token (PIN from pin-source or $STELLA_PKCS11_PIN).",
)
@pass_ctx
def generate_cmd(
    ctx: CliContext,
    out: Path,
    key_type: str,
    channel: str,
    validity_days: int,
    signer: str | None,
) -> None:
    """Generate a signing key, a root key and a version-1 trust root."""
    passphrase = passphrase_from_env()
    trust = generate(
        out,
        key_type=KeyType(key_type),
        channel=channel,
        validity=timedelta(days=validity_days),
        now=datetime.now(UTC),
        passphrase=passphrase,
        signer=signer,
    )
    info = trust.describe()
    signing_keyid = info["bundleKeys"][0]
    signing_ref = signer if signer is not None else str(out / SIGNING_KEY)
    ctx.emit(
        {
            "out": str(out),
            "signingKey": signing_ref,
            "signingKeyid": signing_keyid,
            "rootKey": str(out / ROOT_KEY),
            "rootKeyid": info["rootKeys"][0],
            "trustRoot": str(out / TRUST_ROOT),
            "channel": trust.channel,
            "expires": info["expires"],
            "encrypted": passphrase is not None,
        },
        lambda: (
            f"signing key  {signing_ref}  keyid {signing_keyid[:16]}\n"
            f"root key     {out / ROOT_KEY}  keyid {info['rootKeys'][0][:16]}  (keep offline)\n"
            f"trust root   {out / TRUST_ROOT}  channel {trust.channel}, expires {info['expires']}\n"
            f"next: carry {TRUST_ROOT} to the appliance and run 'stella trust add {TRUST_ROOT}'"
        ),
    )


@keys_group.command("rotate")
@click.option(
    "--keys",
    "directory",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The directory 'keys generate' wrote (holds root.key and trust-root.json).",
)
@click.option("--signing", is_flag=True, help="Replace (and revoke) the bundle signing key.")
@click.option("--root", "root_", is_flag=True, help="Replace the root key.")
@click.option("--validity-days", type=click.IntRange(1, 3650), default=365, show_default=True)
@pass_ctx
def rotate_cmd(
    ctx: CliContext, directory: Path, signing: bool, root_: bool, validity_days: int
) -> None:
    """Write the next trust-root version (new keys, or a new expiry only)."""
    trust = rotate(
        directory,
        new_signing=signing,
        new_root=root_,
        validity=timedelta(days=validity_days),
        now=datetime.now(UTC),
        passphrase=passphrase_from_env(),
    )
    info = trust.describe()
    ctx.emit(
        {**info, "trustRoot": str(directory / TRUST_ROOT)},
        lambda: (
            f"trust root   {directory / TRUST_ROOT}  version {trust.version}, "
            f"expires {info['expires']}\n"
            f"next: carry it to every appliance and run 'stella trust rotate trust-root.json'"
        ),
    )
