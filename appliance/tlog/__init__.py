"""The appliance's own transparency log (docs/transparency.md).

::

    $STELLA_HOME/tlog/
      checkpoint, tile/…     the log (C2SP tlog-tiles; see bundles.tlog.log)
      log.key, log.pub       its Ed25519 key (the key file is private to the appliance user)
      origin                 its name, ``stella.<appliance-id>/log`` (on a shared state store,
                             ``stella.<appliance-id>/log/home-<home-id>``)
      home-id                this home's own name among the homes of one state store
      witnesses/*.vkey       the witnesses this appliance trusts (C2SP verifier keys)
      witnessed/             heads this appliance cosigned as a witness, one per log
      frozen/<n>/            earlier shards after a rotation: read-only, still trusted
      mirrors/               the last head of each mirror's log seen at an import, per channel

The appliance id is the first 16 hex digits of the appliance key's keyid. The log key is
made the first time something is logged, so homes made before the log existed gain one.
Every attestation the appliance signs is appended here before it is attached or returned.

Homes that share one state store (PostgreSQL: a primary and its workers, each with its own
log) name their logs apart, and record each log's verifier key in that state the first time
they append to it, so every home on the state knows every log (:class:`SharedLogs`, which the
stores provide: they are a floor above this module).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.home import DATABASE_URL_ENV, DATABASE_URL_SETTING, Home, database_url
from appliance.sigstore.bundle import read as sigstore_read
from bundles import canonical, dsse
from bundles.errors import CanonicalJSONError, StellaError
from bundles.keys import KeyType, PrivateKey, PublicKey, passphrase_from_env
from bundles.tlog import TlogError
from bundles.tlog.entry import EntryCheck, EntryError, check_entry, dsse_body, log_id, tlog_entry
from bundles.tlog.log import TileLog, open_log, write_durably
from bundles.tlog.note import (
    COSIGNATURE_V1,
    NoteError,
    NoteSigner,
    SignedCheckpoint,
    Verifier,
    raw_ed25519,
)

DIRNAME: Final = "tlog"
VKEY_LIMIT: Final = 4096
TRUSTED_ROOT_LIMIT: Final = 1 << 20


class LogNotStartedError(TlogError):
    """The home has no transparency log yet."""


def small_text(path: Path, limit: int = VKEY_LIMIT) -> str:
    """A one-line file (an origin, a time, a verifier key), read up to ``limit`` bytes."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TlogError(f"{path}: larger than {limit} bytes", hint="expected one short line")
    return data.decode("utf-8", "replace").strip()


def root(home: Home) -> Path:
    return home.root / DIRNAME


class SharedLogs(Protocol):
    """The logs of the homes that share one state store, as that state records them
    (``appliance.store`` provides it with :func:`share_logs_with` when it is imported, as it
    is by every command that signs, hence appends)."""

    def record(self, home: Home, url: str, log: Verifier, started: str) -> None:
        """Record ``log`` (its origin and verifier key) in ``home``'s shared state at ``url``,
        once; refuse it when the state holds its origin with another key (a fork)."""
        ...


_shared: SharedLogs | None = None


def share_logs_with(logs: SharedLogs) -> None:
    """Have every append record the home's log in its shared state (see :class:`SharedLogs`)."""
    global _shared
    _shared = logs


def _shared_state(home: Home) -> str | None:
    """Where ``home``'s stores are shared with other homes (a PostgreSQL URL), or None. Fails
    closed: such a home must log under its own origin and record its log in them; a process
    that cannot (:func:`share_logs_with` never called) would name its log as an embedded
    home's."""
    url = database_url(home)
    if url is None:
        return None
    if _shared is None:
        raise TlogError(
            f"{home.root}: the home's stores are shared ({DATABASE_URL_ENV} or "
            f"{DATABASE_URL_SETTING}), but this process cannot record its log in them",
            hint="run the command through stella; this is a fault of the program",
        )
    return url


HOME_ID: Final = "home-id"


def home_id(home: Home) -> str:
    """This home's own name among the homes of one state store: 16 random hex digits, made
    once (``tlog/home-id``) and kept; the first writer wins a race (a hard link never
    replaces a file)."""
    path = root(home) / HOME_ID
    with contextlib.suppress(FileNotFoundError):
        return _checked_home_id(path)
    root(home).mkdir(mode=0o700, exist_ok=True)
    made = path.with_name(f".{HOME_ID}.{os.getpid()}.{secrets.token_hex(4)}")
    write_durably(made, (secrets.token_hex(8) + "\n").encode())
    try:
        os.link(made, path)
    except FileExistsError:
        pass
    finally:
        made.unlink()
    return _checked_home_id(path)


def _checked_home_id(path: Path) -> str:
    value = small_text(path, 64)
    if len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
        raise TlogError(
            f"{path}: {value!r} is not a home id (16 lowercase hex digits)",
            hint="restore it from a backup; it names this home's log in the shared state",
        )
    return value


def origin_for(home: Home) -> str:
    """The name of a new log of ``home``: ``stella.<appliance-id>/log``, and, when the home's
    state is shared with other homes (which hold the same appliance key), that name with
    ``/home-<home-id>`` after it, so no two logs of the fleet share an origin. A log keeps
    the origin it started with (``tlog/origin``)."""
    base = f"stella.{home.public_key().keyid[:16]}/log"
    if _shared_state(home) is not None:
        return f"{base}/home-{home_id(home)}"
    return base


def _origin(home: Home) -> str:
    path = root(home) / "origin"
    try:
        return small_text(path)
    except FileNotFoundError as e:
        raise LogNotStartedError(
            f"{root(home)}: this appliance has no transparency log yet",
            hint="it starts with the first attestation signed ('stella gate', 'stella vex add')",
        ) from e


EPOCH: Final = "1970-01-01T00:00:00Z"


def started(home: Home) -> str:
    """When the current shard (its key) started (RFC 3339), or the epoch when not recorded."""
    path = root(home) / "started"
    return small_text(path) if path.is_file() else EPOCH


def verifier(home: Home) -> Verifier:
    """The log's verifier key, from ``tlog/origin`` and ``tlog/log.pub``."""
    name = _origin(home)
    if not (root(home) / "log.pub").is_file():  # a new shard before its first entry
        raise LogNotStartedError(f"{root(home)}: this log shard has no key yet")
    return Verifier(name, raw_ed25519(PublicKey.load(root(home) / "log.pub")))


def _signer(home: Home) -> NoteSigner:
    """The log key, made on first use (an Ed25519 key, as C2SP notes require)."""
    directory = root(home)
    key_path = directory / "log.key"
    if not all((directory / n).is_file() for n in ("log.key", "log.pub", "origin")):
        directory.mkdir(mode=0o700, exist_ok=True)
        # Under the appends' lock: processes starting the log at once (workers gating their
        # first images) would each write a key, and the last rename would win over the key
        # log.pub records. The first makes the key; the others find it.
        with _append_lock(home):
            if not key_path.is_file():
                PrivateKey.generate(KeyType.ED25519).save(key_path, passphrase_from_env())
            key = PrivateKey.load(key_path, passphrase_from_env())
            if not (directory / "log.pub").is_file():  # a new log, or a new shard
                key.public_key.save(directory / "log.pub")
                started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                write_durably(directory / "started", (started + "\n").encode())
            if not (directory / "origin").is_file():
                write_durably(directory / "origin", (origin_for(home) + "\n").encode())
    key = PrivateKey.load(key_path, passphrase_from_env())
    signer = NoteSigner(_origin(home), key)
    if signer.verifier != verifier(home):
        raise TlogError(
            f"{key_path}: the log key is not the one log.pub and origin record",
            hint="restore tlog/ from a backup; never replace a log's key in place",
        )
    return signer


ROTATING: Final = ".rotating"  # a shard being frozen (see rotate)
SHARD_FILES: Final = ("checkpoint", "tile", "log.pub", "origin", "started", "log.key")


def _check_not_rotating(home: Home) -> None:
    if (root(home) / ROTATING).exists():
        raise TlogError(
            f"{root(home) / ROTATING}: a rotation of the log was interrupted",
            hint="run 'stella log rotate' again to finish it",
        )


@contextlib.contextmanager
def _append_lock(home: Home) -> Iterator[None]:
    """The lock appends take (bundles.tlog.log), so a rotation never runs amid one."""
    with open(root(home) / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def rotate(home: Home, *, now: datetime, origin: str | None = None) -> tuple[Path, str, str]:
    """Freeze the current shard read-only under ``tlog/frozen/<n>/`` (its key deleted, its
    freezing time in ``frozen-at``) and name the next shard ``origin`` (default
    ``stella.<id>/log/<n+1>``); the next attestation logged makes the new shard's key.
    Returns the frozen shard's directory, its origin and the new origin.

    Crash-safe in steps: the shard's files move into ``tlog/.rotating/`` (appends refuse
    while it exists), the new origin is written, then ``.rotating`` becomes
    ``frozen/<n>``; an interrupted rotation is finished by running it again."""
    home.require()
    directory = root(home)
    staging = directory / ROTATING
    if not staging.exists():
        if not (directory / "checkpoint").is_file():
            raise LogNotStartedError(
                f"{directory}: this log shard has no entry yet, there is nothing to freeze",
                hint="the current shard starts with the next attestation signed",
            )
        open_home_log(home, write=True).repair()  # entries a crash left past the head
    with _append_lock(home):
        if not staging.exists():
            log = open_home_log(home)
            if log.pending:
                raise TlogError(f"{directory}: entries past the checkpoint; run it again")
            staging.mkdir(mode=0o700)
        old_origin = small_text(
            staging / "origin" if (staging / "origin").exists() else directory / "origin"
        )
        for name in SHARD_FILES:
            if (directory / name).exists() and not (staging / name).exists():
                os.replace(directory / name, staging / name)
        frozen = directory / "frozen"
        frozen.mkdir(exist_ok=True)
        taken = {p.name for p in frozen.iterdir()}
        number = next(n for n in range(1, len(taken) + 2) if str(n) not in taken)
        new_origin = origin or f"{origin_for(home)}/{number + 1}"
        if new_origin == old_origin or any(
            small_text(frozen / n / "origin") == new_origin for n in taken
        ):
            raise TlogError(f"origin {new_origin!r} is already a shard of this log")
        write_durably(directory / "origin", (new_origin + "\n").encode())
        with contextlib.suppress(FileNotFoundError):
            (staging / "log.key").unlink()
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_durably(staging / "frozen-at", (stamp + "\n").encode())
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        target = frozen / str(number)
        os.replace(staging, target)
        for synced in (frozen, directory):
            fd = os.open(synced, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return target, old_origin, new_origin


def open_home_log(home: Home, *, write: bool = False) -> TileLog:
    home.require()
    _check_not_rotating(home)
    if write:
        signer = _signer(home)
        return open_log(root(home), signer.verifier, signer)
    return open_log(root(home), verifier(home))


def trusted_logs(home: Home) -> list[Verifier]:
    """This appliance's log and its frozen shards."""
    logs = []
    with contextlib.suppress(LogNotStartedError):
        logs.append(verifier(home))
    frozen = root(home) / "frozen"
    if frozen.is_dir():
        for shard in sorted(frozen.iterdir()):
            name = small_text(shard / "origin")
            logs.append(Verifier(name, raw_ed25519(PublicKey.load(shard / "log.pub"))))
    return logs


def open_shard(home: Home, origin: str) -> TileLog:
    """The frozen shard named ``origin``, read-only."""
    frozen = root(home) / "frozen"
    for shard in sorted(frozen.iterdir()) if frozen.is_dir() else []:
        if small_text(shard / "origin") == origin:
            return open_log(shard, Verifier(origin, raw_ed25519(PublicKey.load(shard / "log.pub"))))
    raise LogNotStartedError(f"{frozen}: no frozen shard of the log {origin}")


def witnesses(home: Home, extra: Sequence[Path] = ()) -> list[Verifier]:
    """The witnesses trusted here: ``tlog/witnesses/*.vkey`` and the files in ``extra``."""
    found = sorted((root(home) / "witnesses").glob("*.vkey")) if home.initialized else []
    out = []
    for path in [*found, *extra]:
        w = Verifier.from_vkey(small_text(path), source=str(path))
        if w.kind != COSIGNATURE_V1:
            raise NoteError(f"{path}: not a witness (cosignature/v1) key")
        out.append(w)
    return out


def log_envelopes(
    home: Home,
    envelopes: Sequence[dsse.Envelope],
    keys: Mapping[str, PublicKey],
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Append ``envelopes`` to the log in one append; their ``tlogEntries`` items, each with
    its inclusion proof under the new checkpoint, which the log timestamps with ``now`` (the
    wall clock by default). Returns once the entries and the checkpoint are durable."""
    bodies = [dsse_body(e, keys) for e in envelopes]
    log = open_home_log(home, write=True)
    url = _shared_state(home)
    if url is not None:  # before an entry: a fork is refused
        assert _shared is not None  # shared only when the store provides it
        _shared.record(home, url, log.verifier, started(home))
    first, _ = log.append(bodies, now=now)
    assert log.head is not None
    return [
        tlog_entry(log.verifier, first + n, body, log.prove_inclusion(first + n), log.head)
        for n, body in enumerate(bodies)
    ]


def log_envelope(
    home: Home,
    envelope: dsse.Envelope,
    keys: Mapping[str, PublicKey],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Append one envelope (see :func:`log_envelopes`)."""
    return log_envelopes(home, [envelope], keys, now=now)[0]


def check_bundle_entries(
    entries: Sequence[Any],
    envelope: dsse.Envelope,
    logs: Sequence[Verifier],
    trusted_witnesses: Sequence[Verifier] = (),
) -> tuple[EntryCheck | None, int, str]:
    """The first entry that verifies against ``logs`` with its count of trusted witness
    cosignatures, or ``(None, 0, why)``."""
    why = "no transparency-log entry"
    for entry in entries:
        try:
            check = check_entry(entry, logs, envelope)
        except EntryError as e:
            why = e.diagnostics()
            continue
        return check, len(check.checkpoint.cosignatures(trusted_witnesses)), ""
    return None, 0, why


def earliest_logged(
    entries: Sequence[Any], envelope: dsse.Envelope, logs: Sequence[Verifier]
) -> EntryCheck | None:
    """Of the entries naming one of ``logs``, the verified one whose checkpoint carries the
    earliest signed timestamp: when the envelope is proven to have existed. None when no
    entry names a trusted log, or none of those has a timestamped checkpoint. An entry that
    names a trusted log and does not verify is refused (:class:`EntryError`): that is
    tampering, not absence."""
    best: EntryCheck | None = None
    for entry in entries:
        if not is_own_log_entry(entry, logs):
            continue
        check = check_entry(entry, logs, envelope)
        if check.logged_at is None:
            continue
        if best is None or best.logged_at is None or check.logged_at < best.logged_at:
            best = check
    return best


def is_own_log_entry(entry: Any, logs: Sequence[Verifier]) -> bool:
    """True when ``entry`` names one of ``logs`` (so it must verify, not just be present)."""
    ids = {log_id(v) for v in logs}
    try:
        return base64.b64decode(entry["logId"]["keyId"], validate=True) in ids
    except (KeyError, TypeError, ValueError):
        return False


def is_appliance_entry(entry: Any) -> bool:
    """True for an entry an appliance's own log made (a ``dsse`` 0.0.2 entry under a
    checkpoint of a ``stella.<id>/log`` origin), whatever appliance made it."""
    try:
        kind = entry["kindVersion"]
        note = entry["inclusionProof"]["checkpoint"]["envelope"]
        origin = note.split("\n", 1)[0]
    except (KeyError, TypeError, AttributeError):
        return False
    return (
        kind == {"kind": "dsse", "version": "0.0.2"}
        and origin.startswith("stella.")
        and "/log" in origin
    )


def trusted_root(home: Home, others: Sequence[tuple[Verifier, str]] = ()) -> dict[str, Any]:
    """A Sigstore ``trusted_root.json`` naming this appliance's log keys (and no CA, CT log
    or TSA), so Sigstore tooling can check the appliance's entries; with ``others`` (a log
    and when it started: the logs of the other homes on a shared state), theirs too."""
    tlogs = []
    listed: set[bytes] = set()
    for shard in [root(home), *sorted((root(home) / "frozen").glob("*"))]:
        if not (shard / "log.pub").is_file():
            continue
        key = PublicKey.load(shard / "log.pub")
        v = Verifier(small_text(shard / "origin"), raw_ed25519(key))
        start = small_text(shard / "started") if (shard / "started").is_file() else ""
        valid: dict[str, str] = {"start": start or EPOCH}
        if (shard / "frozen-at").is_file():
            valid["end"] = small_text(shard / "frozen-at")
        tlogs.append(_trusted_log(v, key.der, valid))
        listed.add(log_id(v))
    for v, start in others:
        if log_id(v) not in listed:
            der = PublicKey.from_crypto(ed25519.Ed25519PublicKey.from_public_bytes(v.public)).der
            tlogs.append(_trusted_log(v, der, {"start": start or EPOCH}))
            listed.add(log_id(v))
    if not tlogs:
        raise LogNotStartedError(f"{root(home)}: this appliance has no transparency log yet")
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": tlogs,
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    }


def _trusted_log(v: Verifier, der: bytes, valid: Mapping[str, str]) -> dict[str, Any]:
    return {
        "baseUrl": f"https://{v.name}",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(der).decode(),
            "keyDetails": "PKIX_ED25519",
            "validFor": dict(valid),
        },
        "logId": {"keyId": base64.b64encode(log_id(v)).decode()},
    }


def mirror_state(home: Home, origin: str, channel: str) -> Path:
    """Where the last head of the mirror log ``origin`` seen importing ``channel`` is kept."""
    name = hashlib.sha256(f"{origin}\n{channel}".encode()).hexdigest()[:16]
    return root(home) / "mirrors" / f"{name}.checkpoint"


def last_mirror_head(home: Home, origin: str, channel: str) -> SignedCheckpoint | None:
    path = mirror_state(home, origin, channel)
    if not path.is_file():
        return None
    return read_checkpoint(path)


def store_mirror_head(home: Home, channel: str, head: SignedCheckpoint) -> None:
    """Keep ``head`` (verified at an import that committed) as the last one seen."""
    path = mirror_state(home, head.checkpoint.origin, channel)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_durably(path, head.to_text().encode())


def witness_state(home: Home, origin: str) -> Path:
    name = hashlib.sha256(origin.encode()).hexdigest()[:16]
    return root(home) / "witnessed" / f"{name}.checkpoint"


def read_checkpoint(path: Path) -> SignedCheckpoint:
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except OSError as e:
        raise NoteError(f"{path}: cannot read: {e.strerror}") from e
    return SignedCheckpoint.parse(data, source=str(path))


def logs_of_trusted_root(path: Path) -> list[Verifier]:
    """The appliance logs a Sigstore trusted root lists (Ed25519 keys whose log id is the
    note key hash of the origin its ``baseUrl`` names); other logs are left out."""
    try:
        doc = canonical.load_file(path, limit=TRUSTED_ROOT_LIMIT)
    except CanonicalJSONError as e:
        raise TlogError(e.message, hint="expected a Sigstore trusted_root.json") from e
    out = []
    for t in doc.get("tlogs", []) if isinstance(doc, dict) else []:
        try:
            origin = str(t["baseUrl"]).removeprefix("https://")
            key = PublicKey(base64.b64decode(t["publicKey"]["rawBytes"]), source=str(path))
            v = Verifier(origin, raw_ed25519(key))
            if base64.b64encode(log_id(v)).decode() == t["logId"]["keyId"]:
                out.append(v)
        except (KeyError, TypeError, ValueError, StellaError):
            continue
    return out


def check_logged(data: bytes, logs: Sequence[Verifier], *, source: str) -> dict[str, Any]:
    """Whether an appliance bundle's entry verifies against ``logs`` (raises when an entry
    names one of them and does not verify: that is tampering, not absence)."""
    bundle = sigstore_read(data, source=source)
    own = [e for e in bundle.entries if is_own_log_entry(e, logs)]
    if not own:
        return {"inclusionProof": False, "entries": len(bundle.entries)}
    check = check_entry(own[0], logs, bundle.envelope)
    return {"inclusionProof": True, "entries": len(bundle.entries), **check.to_dict()}
