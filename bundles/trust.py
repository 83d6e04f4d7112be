"""Offline trust roots: which keys may sign bundles, and how that changes without a network.

``trust-root.json`` is standard TUF root metadata (python-tuf's ``Metadata[Root]``), so any TUF
tool can read it and its rotation rules are the ones TUF specifies and python-tuf implements:

- the ``root`` role's keys and threshold sign the trust root itself;
- the ``targets`` role's keys and threshold sign bundles (the bundle statement's DSSE
  envelope); ``snapshot`` and ``timestamp`` exist because TUF requires them and carry the same
  keys as ``targets``, but Stella Ops gives them no meaning;
- ``x-stella-channel`` (a signed field) names the appliance channel the root is for; a bundle
  for another channel is refused;
- a new root is accepted only with version ``N + 1`` and signatures meeting the threshold of
  BOTH the current root's keys and its own (TUF's rule), never when expired.

Every check takes ``now`` explicitly: no function here reads the clock.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from securesystemslib.signer import Key as SSlibKeyBase
from securesystemslib.signer import Signature as SSlibSignature
from securesystemslib.signer import Signer, SSlibKey
from tuf.api.metadata import Metadata, Role, Root
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from bundles import canonical, limits, rfc3339
from bundles.bounded import read_open_file
from bundles.canonical import kind_of
from bundles.errors import CanonicalJSONError, KeyError_, TrustError
from bundles.keys import PublicKey
from bundles.limits import Unit
from bundles.signer import Signer as KeySigner

CHANNEL_FIELD: Final = "x-stella-channel"
DEFAULT_CHANNEL: Final = "default"
BUNDLE_ROLE: Final = "targets"
ROOT_ROLE: Final = "root"
DEFAULT_VALIDITY: Final = timedelta(days=365)
ROOT_BYTES: Final = limits.cap("trust.root_bytes", 1 << 20, Unit.BYTES, "a trust root file")
ROOT_KEYS: Final = limits.cap(
    "trust.root_keys",
    256,
    Unit.COUNT,
    "the keys, signatures or keyids of one role in a trust root",
)
TRUST_ROOT_LIMIT: Final = ROOT_BYTES.default
#: The roles a trust root must define (TUF's four top-level roles).
ROLES: Final = ("root", "targets", "snapshot", "timestamp")
#: The (keytype, scheme) pairs a trust root may use: the key types Stella Ops verifies with.
KEY_FORMS: Final = frozenset(
    {
        ("ecdsa", "ecdsa-sha2-nistp256"),
        ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
        ("ed25519", "ed25519"),
    }
)


class TrustRootFormatError(TrustError):
    """The file is not a well-formed trust root."""


class TrustRootSignatureError(TrustError):
    """A trust root is not signed by the keys and threshold it must be."""


class TrustRootExpiredError(TrustError):
    """A trust root's expiry has passed: everything it vouches for is frozen."""


class TrustRootRollbackError(TrustError):
    """A trust root is not the direct successor of the current one."""


class _KeySigner(Signer):
    """Lets python-tuf sign through one of our signers without seeing key material."""

    def __init__(self, key: KeySigner) -> None:
        self._key = key
        self._public = _sslib_key(key.public_key)

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Any, secrets_handler: Any = None
    ) -> Signer:
        raise NotImplementedError("keys are passed as objects, not URIs")

    @property
    def public_key(self) -> SSlibKeyBase:
        return self._public

    def sign(self, payload: bytes) -> SSlibSignature:
        return SSlibSignature(self._key.keyid, self._key.sign(payload).hex())


def _sslib_key(key: PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(key.crypto, keyid=key.keyid, scheme=key.scheme)


def _public_key(key: SSlibKeyBase, source: str) -> PublicKey:
    pem = key.keyval.get("public") if isinstance(key.keyval, dict) else None
    if key.keytype == "ed25519" and isinstance(pem, str):
        from cryptography.hazmat.primitives.asymmetric import ed25519

        try:
            raw = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(pem))
        except ValueError:
            raise TrustRootFormatError(
                f"{source}: signed.keys[{key.keyid[:64]!r}].keyval.public is not an Ed25519 "
                "public key (64 hex digits)"
            ) from None
        public = PublicKey.from_crypto(raw, source=source)
    elif isinstance(pem, str):
        try:
            public = PublicKey.from_pem(pem.encode(), source=source)
        except KeyError_ as e:
            raise TrustRootFormatError(
                f"{source}: signed.keys[{key.keyid[:64]!r}].keyval.public is not a PEM public key",
                hint=e.hint,
            ) from e
    else:
        raise TrustRootFormatError(f"{source}: key {key.keyid} has no public key value")
    if public.keyid != key.keyid:
        raise TrustRootFormatError(
            f"{source}: keyid {key.keyid} does not match its key (expected {public.keyid})",
            hint="keyids are the SHA-256 of the key's SubjectPublicKeyInfo",
        )
    return public


def _format_error(source: str, field: str, message: str) -> TrustRootFormatError:
    return TrustRootFormatError(
        f"{source}: {field} {message}",
        hint="use the trust-root.json written by 'stella-mirror keys generate'",
    )


def _field(
    doc: Mapping[str, Any], name: str, want: type | tuple[type, ...], where: str, source: str
) -> Any:
    field = f"{where}.{name}" if where else name
    if name not in doc:
        raise _format_error(source, field, "is missing")
    value = doc[name]
    expected = {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a whole number",
        bool: "true or false",
    }
    wanted = want if isinstance(want, tuple) else (want,)
    ok = isinstance(value, wanted) and not (bool not in wanted and isinstance(value, bool))
    if not ok:
        raise _format_error(
            source,
            field,
            f"must be {' or '.join(expected[w] for w in wanted)}, not {kind_of(value)}",
        )
    return value


def check_shape(doc: Any, source: str) -> None:
    """Refuse a trust root whose fields are not the types TUF root metadata gives them,
    naming the first field that is wrong (python-tuf's own errors name Python internals)."""
    if not isinstance(doc, Mapping):
        raise _format_error(source, "the document", f"must be a JSON object, not {kind_of(doc)}")
    signatures = _field(doc, "signatures", list, "", source)
    limits.check(ROOT_KEYS, len(signatures), f"{source}: signatures")
    for i, sig in enumerate(signatures):
        where = f"signatures[{i}]"
        if not isinstance(sig, Mapping):
            raise _format_error(source, where, f"must be an object, not {kind_of(sig)}")
        _field(sig, "keyid", str, where, source)
        _field(sig, "sig", str, where, source)
    signed = _field(doc, "signed", dict, "", source)
    kind = _field(signed, "_type", str, "signed", source)
    if kind != "root":
        raise _format_error(source, "signed._type", f"is {kind[:64]!r}, not 'root'")
    spec = _field(signed, "spec_version", str, "signed", source)
    if not re.fullmatch(r"1\.[0-9]{1,6}(\.[0-9]{1,6})?", spec):
        raise _format_error(
            source, "signed.spec_version", f"is {spec[:64]!r}, not a TUF 1.x specification version"
        )
    version = _field(signed, "version", int, "signed", source)
    if version < 1:
        raise _format_error(source, "signed.version", f"is {version}, not a positive number")
    expires = _field(signed, "expires", str, "signed", source)
    if not rfc3339.is_canonical(expires):  # TUF: exactly YYYY-MM-DDTHH:MM:SSZ
        raise _format_error(
            source,
            "signed.expires",
            f"is {expires[:64]!r}, not a UTC time like 2030-01-01T00:00:00Z",
        )
    if "consistent_snapshot" in signed:
        _field(signed, "consistent_snapshot", bool, "signed", source)
    if CHANNEL_FIELD in signed:
        _field(signed, CHANNEL_FIELD, str, "signed", source)
    keys = _field(signed, "keys", dict, "signed", source)
    limits.check(ROOT_KEYS, len(keys), f"{source}: signed.keys")
    for keyid, key in keys.items():
        where = f"signed.keys[{keyid[:64]!r}]"
        if not isinstance(key, Mapping):
            raise _format_error(source, where, f"must be an object, not {kind_of(key)}")
        keytype = _field(key, "keytype", str, where, source)
        scheme = _field(key, "scheme", str, where, source)
        if (keytype, scheme) not in KEY_FORMS:
            raise _format_error(
                source,
                where,
                f"is a {keytype[:32]!r} key with scheme {scheme[:32]!r}; trust roots use "
                "ecdsa (ecdsa-sha2-nistp256) or ed25519 keys",
            )
        keyval = _field(key, "keyval", dict, where, source)
        _field(keyval, "public", str, f"{where}.keyval", source)
    roles = _field(signed, "roles", dict, "signed", source)
    extra = sorted(set(roles) - set(ROLES))
    if extra:
        raise _format_error(
            source,
            "signed.roles",
            f"names role {extra[0][:64]!r}; a trust root has exactly {', '.join(ROLES)}",
        )
    for role in ROLES:
        where = f"signed.roles.{role}"
        body = _field(roles, role, dict, "signed.roles", source)
        keyids = _field(body, "keyids", list, where, source)
        limits.check(ROOT_KEYS, len(keyids), f"{source}: {where}.keyids")
        threshold = _field(body, "threshold", int, where, source)
        for j, keyid in enumerate(keyids):
            if not isinstance(keyid, str):
                raise _format_error(
                    source, f"{where}.keyids[{j}]", f"must be a string, not {kind_of(keyid)}"
                )
            if keyid not in keys:
                raise _format_error(
                    source, f"{where}.keyids[{j}]", f"{keyid[:64]!r} is not in signed.keys"
                )
        if len(set(keyids)) != len(keyids):
            raise _format_error(source, f"{where}.keyids", "names a key twice")
        if not 1 <= threshold <= len(keyids):
            raise _format_error(
                source, f"{where}.threshold", f"is {threshold}, not within 1..{len(keyids)}"
            )


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """A parsed trust root. Construct with :meth:`create` or :meth:`from_bytes`."""

    metadata: Metadata[Root]
    source: str = "trust-root.json"

    @property
    def root(self) -> Root:
        return self.metadata.signed

    @property
    def version(self) -> int:
        return self.root.version

    @property
    def expires(self) -> datetime:
        return self.root.expires

    @property
    def channel(self) -> str:
        value = self.root.unrecognized_fields.get(CHANNEL_FIELD, DEFAULT_CHANNEL)
        return str(value)

    def _role_keys(self, role: str) -> dict[str, PublicKey]:
        return {
            keyid: _public_key(self.root.keys[keyid], self.source)
            for keyid in self.root.roles[role].keyids
        }

    @property
    def bundle_keys(self) -> dict[str, PublicKey]:
        """Keys that may sign bundles, by keyid."""
        return self._role_keys(BUNDLE_ROLE)

    @property
    def bundle_threshold(self) -> int:
        return self.root.roles[BUNDLE_ROLE].threshold

    @property
    def root_keys(self) -> dict[str, PublicKey]:
        return self._role_keys(ROOT_ROLE)

    @property
    def root_threshold(self) -> int:
        return self.root.roles[ROOT_ROLE].threshold

    def to_bytes(self) -> bytes:
        """Indented JSON for people; signatures cover TUF's canonical form of ``signed``."""
        return self.metadata.to_bytes(JSONSerializer(compact=False)) + b"\n"

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "trust-root.json") -> TrustRoot:
        limits.check(ROOT_BYTES, len(data), source)
        try:
            doc = canonical.loads(data, source=source)
        except CanonicalJSONError as e:
            raise TrustRootFormatError(
                e.message, hint="use the trust-root.json written by 'stella-mirror keys generate'"
            ) from e
        check_shape(doc, source)
        try:
            metadata = Metadata[Root].from_bytes(data)
        except (DeserializationError, ValueError, KeyError, TypeError) as e:
            cause = e.__cause__ if isinstance(e, DeserializationError) and e.__cause__ else e
            raise TrustRootFormatError(
                f"{source}: not TUF root metadata: {type(cause).__name__}: {cause}",
                hint="use the trust-root.json written by 'stella-mirror keys generate'",
            ) from e
        if not isinstance(metadata.signed, Root):
            raise TrustRootFormatError(f"{source}: metadata is {metadata.signed.type}, not root")
        trust = cls(metadata, source)
        trust.root_keys  # noqa: B018 - validate every key now, not on first use
        trust.bundle_keys  # noqa: B018
        return trust

    @classmethod
    def load(cls, path: Path) -> TrustRoot:
        try:
            with open(path, "rb") as fh:
                data = read_open_file(fh, ROOT_BYTES, str(path))
        except OSError as e:
            raise TrustRootFormatError(f"{path}: cannot read trust root: {e.strerror}") from e
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def create(
        cls,
        root_keys: Sequence[KeySigner],
        bundle_keys: Iterable[PublicKey],
        *,
        now: datetime,
        channel: str = DEFAULT_CHANNEL,
        validity: timedelta = DEFAULT_VALIDITY,
        root_threshold: int = 1,
        bundle_threshold: int = 1,
        version: int = 1,
    ) -> TrustRoot:
        """A new root, signed by every key in ``root_keys``."""
        signers = list(root_keys)
        bundle = list(bundle_keys)
        if not signers or not bundle:
            raise TrustError("a trust root needs at least one root key and one bundle key")
        if not 1 <= root_threshold <= len(signers):
            raise TrustError(f"root threshold {root_threshold} is not within 1..{len(signers)}")
        if not 1 <= bundle_threshold <= len(bundle):
            raise TrustError(f"bundle threshold {bundle_threshold} is not within 1..{len(bundle)}")
        keys = {k.keyid: _sslib_key(k.public_key) for k in signers}
        keys.update({k.keyid: _sslib_key(k) for k in bundle})
        bundle_ids = sorted(k.keyid for k in bundle)
        roles = {
            ROOT_ROLE: Role(sorted(k.keyid for k in signers), root_threshold),
            BUNDLE_ROLE: Role(bundle_ids, bundle_threshold),
            "snapshot": Role(bundle_ids, bundle_threshold),
            "timestamp": Role(bundle_ids, bundle_threshold),
        }
        root = Root(
            version=version,
            expires=_whole_seconds(now + validity),
            keys=dict(keys),
            roles=roles,
            consistent_snapshot=False,
            unrecognized_fields={CHANNEL_FIELD: channel},
        )
        metadata = Metadata(root)
        for key in signers:
            metadata.sign(_KeySigner(key), append=True)
        return cls(metadata)

    def successor(
        self,
        *,
        now: datetime,
        root_keys: Sequence[PublicKey] | None = None,
        bundle_keys: Sequence[PublicKey] | None = None,
        root_threshold: int | None = None,
        bundle_threshold: int | None = None,
        validity: timedelta = DEFAULT_VALIDITY,
    ) -> Metadata[Root]:
        """The unsigned next version (keys added, replaced or revoked); sign it with
        :func:`sign_root` by enough old AND new root keys."""
        root = copy.deepcopy(self.root)
        root.version += 1
        root.expires = _whole_seconds(now + validity)
        for role, new_keys, threshold in (
            (ROOT_ROLE, root_keys, root_threshold),
            (BUNDLE_ROLE, bundle_keys, bundle_threshold),
        ):
            if new_keys is not None:
                for keyid in list(root.roles[role].keyids):
                    root.revoke_key(keyid, role)
                for key in new_keys:
                    root.add_key(_sslib_key(key), role)
            if threshold is not None:
                root.roles[role].threshold = threshold
        for role in ("snapshot", "timestamp"):
            root.roles[role] = Role(
                list(root.roles[BUNDLE_ROLE].keyids), root.roles[BUNDLE_ROLE].threshold
            )
        used = {k for r in root.roles.values() for k in r.keyids}
        root.keys = {k: v for k, v in root.keys.items() if k in used}
        return Metadata(root)

    def check_signed(self, *, now: datetime) -> None:
        """For a root trusted for the first time: signed by its own root threshold, unexpired."""
        result = self.root.get_root_verification_result(
            None, self.metadata.signed_bytes, self.metadata.signatures
        )
        if not result.verified:
            raise TrustRootSignatureError(
                f"{self.source}: version {self.version} is signed by "
                f"{len(result.first.signed)} of the {self.root_threshold} root keys it requires"
            )
        self.check_unexpired(now=now)

    def check_unexpired(self, *, now: datetime) -> None:
        if self.root.is_expired(now):
            raise TrustRootExpiredError(
                f"{self.source}: trust root version {self.version} expired at "
                f"{self.expires.isoformat()}",
                hint="import a newer trust root signed by the current root keys",
            )

    def check_successor(self, new: TrustRoot, *, now: datetime) -> None:
        """Accept ``new`` only as the signed, unexpired, same-channel version N + 1."""
        if new.version != self.version + 1:
            raise TrustRootRollbackError(
                f"{new.source}: trust root version {new.version} does not follow the trusted "
                f"version {self.version}",
                hint=f"supply version {self.version + 1} (rotate one version at a time)",
            )
        if new.channel != self.channel:
            raise TrustError(
                f"{new.source}: trust root is for channel {new.channel!r}, "
                f"this appliance trusts channel {self.channel!r}"
            )
        try:
            result = new.root.get_root_verification_result(
                self.root, new.metadata.signed_bytes, new.metadata.signatures
            )
        except ValueError as e:
            raise TrustRootRollbackError(f"{new.source}: {e}") from e
        if not result.first.verified:
            raise TrustRootSignatureError(
                f"{new.source}: version {new.version} is signed by {len(result.first.signed)} of "
                f"the {self.root_threshold} current root keys it requires",
                hint="a new trust root must be signed by a threshold of the keys trusted now",
            )
        if not result.second.verified:
            raise TrustRootSignatureError(
                f"{new.source}: version {new.version} is signed by {len(result.second.signed)} of "
                f"its own {new.root_threshold} root keys"
            )
        new.check_unexpired(now=now)

    def describe(self) -> Mapping[str, Any]:
        return {
            "version": self.version,
            "channel": self.channel,
            "expires": self.expires.isoformat().replace("+00:00", "Z"),
            "rootKeys": sorted(self.root_keys),
            "rootThreshold": self.root_threshold,
            "bundleKeys": sorted(self.bundle_keys),
            "bundleThreshold": self.bundle_threshold,
        }


def sign_root(
    metadata: Metadata[Root], keys: Iterable[KeySigner], *, source: str = "trust root"
) -> TrustRoot:
    """Add signatures by ``keys`` to an unsigned or partly signed root."""
    for key in keys:
        metadata.sign(_KeySigner(key), append=True)
    return TrustRoot(metadata, source)


def _whole_seconds(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


__all__ = [
    "BUNDLE_ROLE",
    "CHANNEL_FIELD",
    "DEFAULT_CHANNEL",
    "TrustRoot",
    "TrustRootExpiredError",
    "TrustRootFormatError",
    "TrustRootRollbackError",
    "TrustRootSignatureError",
    "check_shape",
    "sign_root",
]
