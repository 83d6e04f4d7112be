"""The appliance's key ring: every key it has signed with or will sign with, each with its
validity window, kept in ``$STELLA_HOME/keys/keyring.json`` (docs/keys.md).

Exactly one key signs at any time: the one whose window holds the wall clock. Rotation
(:func:`rotate`) creates the next key, publishes it in the ring with a window starting at the
chosen switch time, and ends the current key's window there; until then the current key keeps
signing, and both verify. The switch itself happens on the first signature after its time
(:func:`active_signer`): the next key becomes ``keys/appliance.key`` (or the home's token
URI), ``keys/appliance.pub`` follows, the retired key file is gone, and the audit log records
the switch, signed by the new key. A retired key stays in the ring for verification only.

Revocation (:func:`revoke`) marks a key reported stolen: signatures it made at or after the
revocation time are refused by ``stella verify``; earlier ones stay valid where the
transparency log proves them earlier. What "made at" means is
:func:`appliance.auditor.verify.check_signing_time`.

A home made before key rings existed has no ``keyring.json``: its ring is the one key in
``keys/appliance.pub``, valid from the beginning, until its first rotation writes the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from appliance.home import Home, SignerMismatchError
from bundles import canonical
from bundles.errors import CanonicalJSONError, UsageError
from bundles.files import atomic_write
from bundles.keys import (
    KeyEntry,
    KeyRevokedError,
    KeyRing,
    KeyRingError,
    KeyType,
    KeyWindowError,
    PrivateKey,
    PublicKey,
    Revocation,
    ValidFor,
    format_instant,
    passphrase_from_env,
)
from bundles.pkcs11_uri import Pkcs11KeyMissingError, is_pkcs11_uri, parse_pkcs11_uri
from bundles.signer import Signer, close_signer, generate_signer, load_signer

RING_LIMIT: Final = 1 << 20
ROTATION_DAYS: Final = 90
"""Default planned key lifetime: quarterly (``keyRotationDays`` in config.json overrides)."""
ROTATION_WARNING: Final = timedelta(days=14)
NEXT_KEY: Final = "next.key"
NEXT_PUB: Final = "next.pub"
FILE_SIGNER: Final = "appliance.key"


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def load_ring(home: Home) -> KeyRing:
    """The home's key ring; for a home without ``keyring.json``, its one key, valid from the
    beginning."""
    path = home.key_ring_file
    if not path.exists():
        key = PublicKey.load(home.appliance_pub)
        created = datetime.fromtimestamp(home.appliance_pub.stat().st_mtime, UTC)
        entry = KeyEntry(
            key, ValidFor(), created.replace(microsecond=0), home.signer_reference() or FILE_SIGNER
        )
        return KeyRing((entry,), source=str(path))
    try:
        doc = canonical.load_file(path, limit=RING_LIMIT)
    except CanonicalJSONError as e:
        raise KeyRingError(e.message, hint="restore keys/keyring.json from a backup") from e
    return KeyRing.from_dict(doc, source=str(path))


def save_ring(home: Home, ring: KeyRing) -> None:
    """Write ``keyring.json`` atomically (it holds public keys and signer names only)."""
    atomic_write(home.key_ring_file, canonical.dumps(ring.to_dict()) + b"\n", mode=0o644)


def start_ring(home: Home, key: PublicKey, *, now: datetime | None = None) -> None:
    """Record a new home's first key, valid from the beginning (``stella init``)."""
    entry = KeyEntry(key, ValidFor(), _now(now).replace(microsecond=0), home.signer_reference())
    save_ring(home, KeyRing((entry,), source=str(home.key_ring_file)))


def rotation_days(home: Home) -> int:
    """The planned lifetime of a key in days: ``keyRotationDays`` in config.json, else 90."""
    value = home.settings().get("keyRotationDays", ROTATION_DAYS)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
        raise KeyRingError(
            f"{home.config}: keyRotationDays must be a whole number of days from 1 to 3650, "
            f"got {value!r}",
            hint="set it to 90 for quarterly rotation",
        )
    return value


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """When the key signing at ``now`` is planned to be rotated, and whether a next key is
    already waiting."""

    key: KeyEntry
    due: datetime
    next_key: KeyEntry | None

    def warn(self, now: datetime) -> bool:
        return self.next_key is None and now >= self.due - ROTATION_WARNING


def rotation_plan(home: Home, *, now: datetime | None = None) -> RotationPlan:
    ring = load_ring(home)
    when = _now(now)
    current = ring.at(when) or ring.latest
    began = current.valid_for.start or current.created
    later = [e for e in ring.entries if e.valid_for.start is not None and e.valid_for.start > when]
    return RotationPlan(
        current, began + timedelta(days=rotation_days(home)), next(iter(later), None)
    )


def _open_next(home: Home, entry: KeyEntry) -> Signer:
    """The signer of a key that has not signed yet: its token URI, or ``keys/next.key``
    (or, after an interrupted switch, already ``keys/appliance.key``)."""
    if entry.signer is not None and is_pkcs11_uri(entry.signer):
        signer = load_signer(entry.signer)
    else:
        path = home.keys / NEXT_KEY
        if not path.exists():
            path = home.appliance_key
        signer = PrivateKey.load(path, passphrase_from_env())
    if signer.keyid != entry.keyid:
        close_signer(signer)
        raise SignerMismatchError(
            f"{entry.signer}: the key {signer.keyid[:16]} is not key {entry.keyid[:16]} the "
            "key ring names as next",
            hint="restore keys/next.key, or insert the token holding the next key",
        )
    return signer


def _switch(home: Home, ring: KeyRing, entry: KeyEntry, when: datetime) -> Signer:
    """Make ``entry`` the home's signing key: record the switch in the audit log signed by
    it (so the head checkpoint is its), then install its files and name it in config.json."""
    from appliance.store import open_state
    from appliance.store.audit import AuditAction, AuditLog, os_actor
    from bundles import __version__

    signer = _open_next(home, entry)
    previous = PublicKey.load(home.appliance_pub)
    with open_state(home) as db:
        AuditLog(db, key=signer).append(
            AuditAction.KEY_SWITCH,
            f"key {entry.keyid}",
            actor=os_actor("keys switch"),
            time=when,
            inputs={"from": previous.keyid, "at": format_instant(entry.valid_for.start or when)},
            versions={"stella": __version__},
            result={"keyid": entry.keyid, "validFor": entry.valid_for.to_dict()},
        )
    settings = {k: v for k, v in home.settings().items() if k != "signer"}
    if entry.signer is not None and is_pkcs11_uri(entry.signer):
        settings["signer"] = entry.signer
        home.write_settings(settings)
        with contextlib.suppress(FileNotFoundError):
            home.appliance_key.unlink()  # the retired key file signs nothing any more
    else:
        next_key = home.keys / NEXT_KEY
        if next_key.exists():
            os.replace(next_key, home.appliance_key)  # the retired key file is gone
        home.write_settings(settings)
    entry.key.save(home.appliance_pub)
    with contextlib.suppress(FileNotFoundError):
        (home.keys / NEXT_PUB).unlink()
    retired = tuple(
        replace(e, signer=None)
        if e.keyid != entry.keyid
        else replace(e, signer=settings.get("signer", FILE_SIGNER))
        for e in ring.entries
    )
    save_ring(home, replace(ring, entries=retired))
    return signer


def active_signer(home: Home, *, at: datetime | None = None, now: datetime | None = None) -> Signer:
    """The signer of the key whose window holds ``now``, switching to it when its time has
    come (see the module docstring). Refuses a revoked key, and a signing time ``at``
    outside the key's window."""
    when = _now(now)
    ring = load_ring(home)
    entry = ring.at(when)
    if entry is None:
        raise KeyWindowError(
            f"{home.key_ring_file}: no key of the ring is valid at {format_instant(when)}",
            hint="rotate to a new key: 'stella keys rotate'",
        )
    current = PublicKey.load(home.appliance_pub)
    installed = ring.get(current.keyid)
    if installed is not None and ring.entries.index(installed) > ring.entries.index(entry):
        entry = installed  # a switch is one way: a clock set back brings no retired key back
    if entry.revoked is not None and when >= entry.revoked.at:
        raise KeyRevokedError(
            f"the appliance key {entry.keyid[:16]} was revoked at "
            f"{format_instant(entry.revoked.at)} ({entry.revoked.reason}); it signs nothing more",
            hint="rotate to a new key now: 'stella keys rotate' (docs/runbooks.md)",
        )
    if at is not None and not entry.usable_at(at):
        raise KeyWindowError(
            f"evaluation time {format_instant(at)} is outside the validity window "
            f"{entry.valid_for.describe()} of the signing key {entry.keyid[:16]}",
            hint="a verdict is signed by the key in service at its evaluation time; "
            "choose an --at inside the window",
        )
    if current.keyid != entry.keyid:
        return _switch(home, ring, entry, when)
    return home.open_signer(home.signer_reference(), entry.key)


@dataclass(frozen=True, slots=True)
class Rotation:
    ring: KeyRing
    previous: KeyEntry
    next_key: KeyEntry
    switched: bool


def _new_key(home: Home, signer: str | None, key_type: KeyType) -> tuple[PublicKey, str]:
    """Create the next key: in the token the URI names (an existing key object under that
    label is used when it is not in the ring yet), else ``keys/next.key``."""
    if signer is not None:
        if not is_pkcs11_uri(signer):
            raise UsageError(
                f"--signer {signer!r} is not a pkcs11: URI",
                hint="leave --signer out to keep the next key in keys/next.key",
            )
        parse_pkcs11_uri(signer)
        try:
            opened = load_signer(signer)
        except Pkcs11KeyMissingError:
            opened = generate_signer(signer)
        try:
            home.claim_key(opened.public_key)
            return opened.public_key, signer
        finally:
            close_signer(opened)
    path = home.keys / NEXT_KEY
    if path.exists():
        raise KeyRingError(
            f"{path}: a next key is already waiting",
            hint="a rotation is planned already ('stella keys list'); remove the file only "
            "if no rotation is planned",
        )
    key = PrivateKey.generate(key_type)
    key.save(path, passphrase_from_env())
    key.public_key.save(home.keys / NEXT_PUB)
    return key.public_key, NEXT_KEY


def rotate(
    home: Home,
    *,
    at: datetime | None = None,
    now: datetime | None = None,
    signer: str | None = None,
    key_type: KeyType = KeyType.ECDSA_P256,
) -> Rotation:
    """Create the next key and publish it in the ring, taking over at ``at`` (default
    ``now``); the current key's window ends there. A switch time in the past is refused
    (what the current key signed since would lose its key), and so is a second rotation
    while one is waiting."""
    clock = _now(now)
    when = (clock if at is None else at.astimezone(UTC)).replace(microsecond=0)
    if when < clock.replace(microsecond=0):
        raise UsageError(
            f"--at {format_instant(when)} is in the past (now {format_instant(clock)})",
            hint="the switch can only be now or later: leave --at out to switch now",
        )
    ring = load_ring(home)
    current = ring.latest
    waiting = current.valid_for.start
    if len(ring.entries) > 1 and waiting is not None and waiting > clock:
        raise KeyRingError(
            f"{home.key_ring_file}: key {current.keyid[:16]} is already waiting to take over "
            f"at {format_instant(waiting)}",
            hint="one rotation at a time: plan the next one after this switch",
        )
    if current.revoked is not None and when > clock:
        raise UsageError(
            f"key {current.keyid[:16]} is revoked; its successor cannot wait until "
            f"{format_instant(when)}",
            hint="leave --at out: after a revocation the next key takes over now",
        )
    if current.valid_for.end is not None:
        raise KeyRingError(
            f"{home.key_ring_file}: key {current.keyid[:16]} already hands over at "
            f"{format_instant(current.valid_for.end)}",
            hint="a rotation is planned already ('stella keys list'); plan the next one after it",
        )
    public, reference = _new_key(home, signer, key_type)
    try:
        rotated = ring.rotated(
            public, at=when, created=clock.replace(microsecond=0), signer=reference
        )
    except KeyRingError:
        if reference == NEXT_KEY:
            for name in (NEXT_KEY, NEXT_PUB):
                with contextlib.suppress(FileNotFoundError):
                    (home.keys / name).unlink()
        raise
    save_ring(home, rotated)
    record_rotation(home, rotated, current, clock)
    previous, new = rotated.entries[-2], rotated.entries[-1]
    switched = PublicKey.load(home.appliance_pub).keyid == new.keyid
    return Rotation(load_ring(home), previous, new, switched)


def _record(
    home: Home,
    action: str,
    subject: str,
    *,
    command: str,
    now: datetime,
    inputs: Mapping[str, Any],
    result: Mapping[str, Any],
) -> None:
    """Append one audit record signed by the key in service at ``now`` (switching to it
    first when its time has come)."""
    from appliance.store import open_state
    from appliance.store.audit import AuditAction, AuditLog, os_actor
    from bundles import __version__

    signer = active_signer(home, now=now)
    try:
        with open_state(home) as db:
            AuditLog(db, key=signer).append(
                AuditAction(action),
                subject,
                actor=os_actor(command),
                time=now,
                inputs=inputs,
                versions={"stella": __version__},
                result=result,
            )
    finally:
        close_signer(signer)


def record_rotation(home: Home, ring: KeyRing, previous: KeyEntry, now: datetime) -> None:
    """Append the rotation's audit record, signed by the key in service now (the new one when
    the switch is now, which also installs it)."""
    new = ring.latest
    _record(
        home,
        "key.rotate",
        f"key {new.keyid}",
        command="keys rotate",
        now=now,
        inputs={"previous": previous.keyid, "signer": _shown(new.signer)},
        result={
            "keyid": new.keyid,
            "validFor": new.valid_for.to_dict(),
            "previousValidFor": ring.entries[-2].valid_for.to_dict(),
            "previousRevoked": previous.revoked.to_dict() if previous.revoked else None,
        },
    )


def _shown(reference: str | None) -> str | None:
    return reference if reference is None or is_pkcs11_uri(reference) else f"keys/{reference}"


def revoke(
    home: Home, prefix: str, *, at: datetime, reason: str, now: datetime | None = None
) -> KeyEntry:
    """Mark a key compromised from ``at`` on; what it signed before stays valid. Recorded in
    the audit log (signed by the key in service, unless that is the one revoked: then the
    record waits for the next key's first signature, the rotation)."""
    if not reason.strip():
        raise UsageError("--reason must say why the key is revoked", hint="e.g. 'token stolen'")
    clock = _now(now)
    ring = load_ring(home)
    entry = ring.find(prefix)
    changed = ring.revoked(
        entry.keyid, Revocation(at.astimezone(UTC).replace(microsecond=0), reason)
    )
    revoked = changed.get(entry.keyid)
    assert revoked is not None
    save_ring(home, changed)
    active = changed.at(clock)
    if active is not None and active.usable_at(clock):
        _record(
            home,
            "key.revoke",
            f"key {entry.keyid}",
            command="keys revoke",
            now=clock,
            inputs={"at": format_instant(revoked.revoked.at) if revoked.revoked else None},
            result={"keyid": entry.keyid, "reason": reason},
        )
    return revoked
