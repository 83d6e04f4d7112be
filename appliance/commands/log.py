"""``stella log checkpoint|verify|prove|consistency|cosign|trusted-root|rotate|list``: the
appliance's transparency log (docs/transparency.md)."""

from __future__ import annotations

import base64
import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance import tlog
from appliance.home import Home
from appliance.sigstore import bundle as sigstore
from appliance.store import recorded_logs
from bundles import canonical, dsse
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError
from bundles.keys import PrivateKey, passphrase_from_env
from bundles.rfc3339 import format_time
from bundles.tlog import TlogError
from bundles.tlog.entry import EntryCheck, dsse_body
from bundles.tlog.log import TileLog, open_log, write_durably
from bundles.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from bundles.tlog.note import (
    COSIGNATURE_V1,
    NoteError,
    NoteSigner,
    Verifier,
    require_witnesses,
)

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group("log")
def log_group() -> None:
    """The appliance's append-only transparency log: every attestation it signs is in it."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _reader(ctx: CliContext) -> TileLog:
    return tlog.open_home_log(Home(ctx.home).require())


def _write(path: Path, data: bytes) -> None:
    try:
        write_durably(path, data)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from e


@log_group.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@pass_ctx
def checkpoint_cmd(ctx: CliContext, out: Path | None) -> None:
    """The log's latest signed checkpoint (a C2SP signed note)."""
    log = _reader(ctx)
    text = log.checkpoint_text()
    if out is not None:
        _write(out, text.encode())
    assert log.head is not None
    head = log.head.checkpoint
    data = {
        "origin": head.origin,
        "size": head.size,
        "rootHash": _b64(head.root),
        "logKey": log.verifier.vkey(),
        "checkpoint": text,
        "pending": log.pending,
        "timestamp": _stamp(log.head.timestamp(log.verifier)),
    }
    ctx.emit(data, f"wrote {out}" if out else text.rstrip("\n"))


def _stamp(seconds: int | None) -> str | None:
    """The log's signed time of a head (docs/transparency.md, "Timestamps"), or None for a
    head written before logs timestamped them."""
    return format_time(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None


@log_group.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=_FILE,
    help="A head to check against the log (e.g. one witnesses cosigned); default: the log's.",
)
@click.option("--witness", "witness_keys", multiple=True, type=_FILE, help="Trust this witness.")
@click.option("--min-witnesses", type=click.IntRange(min=0), default=0, show_default=True)
@pass_ctx
def verify_cmd(
    ctx: CliContext,
    checkpoint_file: Path | None,
    witness_keys: tuple[Path, ...],
    min_witnesses: int,
) -> None:
    """Recompute the whole tree from the entries and compare every tile and the checkpoint;
    report the witnesses that cosigned."""
    home = Home(ctx.home).require()
    log = _reader(ctx)
    head = log.verify()
    signed = log.head
    if checkpoint_file is not None:
        signed = tlog.read_checkpoint(checkpoint_file)
        other = signed.verify(log.verifier, source=str(checkpoint_file))
        _same_tree(log, other.size, other.root, str(checkpoint_file))
    trusted = tlog.witnesses(home, witness_keys)
    cosigned = require_witnesses(signed, trusted, min_witnesses) if signed else {}
    data: dict[str, Any] = {
        "origin": head.origin,
        "size": head.size,
        "rootHash": _b64(head.root),
        "verified": True,
        "pending": log.pending,
        "transparency": {"witnesses": len(cosigned), "witnessNames": sorted(cosigned)},
    }
    text = f"log {head.origin}: {head.size} entries, every tile and the checkpoint verify"
    if log.pending:
        text += (
            f"\n{log.pending} entries are past the checkpoint (an append was interrupted); "
            "the next append includes them"
        )
    text += f"\nwitnesses: {len(cosigned)} of {len(trusted)} trusted cosigned" + (
        f" ({', '.join(sorted(cosigned))})" if cosigned else ""
    )
    ctx.emit(data, text)


def _same_tree(log: TileLog, size: int, root: bytes, source: str) -> None:
    """A head of this log: not larger than it, and the same root at its size."""
    if size > log.size:
        raise TlogError(
            f"{source}: a head of size {size}, but the log has {log.size} entries: the log was "
            "rolled back (or the head is from a fork)",
            hint="keep both as evidence; restore the log from a backup",
        )
    if log.root_at(size) != root:
        raise TlogError(
            f"{source}: at size {size} the log's root is {log.root_at(size).hex()[:16]}…, the "
            f"head says {root.hex()[:16]}…: two heads of the same size differ, the log forked",
            hint="keep both checkpoints as evidence",
        )


@log_group.command("prove")
@click.argument("file", type=_FILE)
@pass_ctx
def prove_cmd(ctx: CliContext, file: Path) -> None:
    """Prove that the attestation FILE (a Sigstore bundle, or a DSSE envelope such as a VEX
    statement) is in the log: its entry's proof, and a fresh inclusion proof under the
    current checkpoint. An entry of another home's log that the shared state records has its
    own proof checked (that home gives the fresh one)."""
    home = Home(ctx.home).require()
    with open(file, "rb") as fh:
        data = fh.read(sigstore.LIMIT + 1)
    doc = canonical.loads(data, limit=sigstore.LIMIT, source=str(file))
    if isinstance(doc, dict) and "payloadType" in doc:  # a bare DSSE envelope (a VEX document)
        envelope, entries = dsse.Envelope.from_dict(doc, source=str(file)), ()
    else:
        bundle = sigstore.read(data, source=str(file))
        envelope, entries = bundle.envelope, bundle.entries
    carried = None
    check, _, why = tlog.check_bundle_entries(entries, envelope, tlog.trusted_logs(home))
    if check is None and entries:
        other = [r.log for r in recorded_logs(home)]
        elsewhere, _, _ = tlog.check_bundle_entries(entries, envelope, other)
        if elsewhere is not None:
            _emit_elsewhere(ctx, file, elsewhere)
            return
    log = _reader(ctx)
    if check is not None and check.origin != log.origin:  # logged in a frozen shard
        log = tlog.open_shard(home, check.origin)
    if check is not None:
        body, index = check.body, check.log_index
        _same_tree(log, check.tree_size, check.checkpoint.checkpoint.root, f"{file} checkpoint")
        carried = {"logIndex": index, "treeSize": check.tree_size}
    else:
        keys = {home.public_key().keyid: home.public_key()}
        body = dsse_body(envelope, keys)
        found = log.find(body)
        if found is None:
            raise TlogError(
                f"{file}: not in the log {log.origin} ({why})",
                hint="an attestation the appliance did not log was not signed by it, or was "
                "signed before the log existed",
            )
        index = found
    proof = log.prove_inclusion(index)
    assert log.head is not None
    verify_inclusion(index, log.size, leaf_hash(body), proof, log.head.checkpoint.root)
    data_out = {
        "file": str(file),
        "logIndex": index,
        "treeSize": log.size,
        "rootHash": _b64(log.head.checkpoint.root),
        "hashes": [_b64(h) for h in proof],
        "checkpoint": log.head.to_text(),
        "carried": carried,
    }
    text = f"{file}: entry {index} of {log.origin}, proven under the head of size {log.size}"
    if carried:
        text += f" (its own proof, under size {carried['treeSize']}, verifies too)"
    ctx.emit(data_out, text)


def _emit_elsewhere(ctx: CliContext, file: Path, check: EntryCheck) -> None:
    head = check.checkpoint.checkpoint
    data = {
        "file": str(file),
        "log": check.origin,
        "logIndex": check.log_index,
        "treeSize": check.tree_size,
        "rootHash": _b64(head.root),
        "checkpoint": check.checkpoint.to_text(),
        "carried": {"logIndex": check.log_index, "treeSize": check.tree_size},
        "sharedState": True,
    }
    ctx.emit(
        data,
        f"{file}: entry {check.log_index} of {check.origin}, another home's log the shared "
        f"state records: its own proof, under the head of size {check.tree_size}, verifies "
        "(that home's 'stella log prove' gives a proof under its current head)",
    )


@log_group.command("consistency")
@click.argument("old_checkpoint", metavar="OLD_CHECKPOINT", type=_FILE)
@pass_ctx
def consistency_cmd(ctx: CliContext, old_checkpoint: Path) -> None:
    """Prove that the log extends OLD_CHECKPOINT: nothing logged then was rewritten since."""
    log = _reader(ctx)
    old = tlog.read_checkpoint(old_checkpoint).verify(log.verifier, source=str(old_checkpoint))
    _same_tree(log, old.size, old.root, str(old_checkpoint))
    assert log.head is not None
    new = log.head.checkpoint
    proof = log.prove_consistency(old.size)
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    data = {
        "origin": new.origin,
        "oldSize": old.size,
        "newSize": new.size,
        "oldRootHash": _b64(old.root),
        "newRootHash": _b64(new.root),
        "hashes": [_b64(h) for h in proof],
        "checkpoint": log.head.to_text(),
        "consistent": True,
    }
    ctx.emit(
        data,
        f"the log of size {new.size} extends the head of size {old.size} "
        f"({len(proof)} proof hashes verify)",
    )


def _log_named(home: Home, origin: str) -> Verifier:
    """This home's log, or the log of another home the shared state records as ``origin``."""
    with contextlib.suppress(tlog.LogNotStartedError):
        own = tlog.verifier(home)
        if own.name == origin:
            return own
    recorded = [r.log for r in recorded_logs(home) if r.log.name == origin]
    return recorded[0] if recorded else tlog.verifier(home)


def _witness_signer(path: Path, name: str | None) -> NoteSigner:
    key = PrivateKey.load(path, passphrase_from_env())
    witness_name = name or f"witness.{key.keyid[:16]}"
    return NoteSigner(witness_name, key, COSIGNATURE_V1)


@log_group.command("cosign")
@click.argument("checkpoint_file", metavar="CHECKPOINT", type=_FILE)
@click.option("--key", "key_path", required=True, type=_FILE, help="The witness's Ed25519 key.")
@click.option("--name", help="The witness's name (default: witness.<keyid>).")
@click.option(
    "--log-key",
    type=_FILE,
    help="The log's verifier key (C2SP vkey); default: this home's log, or the log of another "
    "home the shared state records under the checkpoint's origin.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A copy of that log's tiles, for the consistency proof; default: this home's log.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@pass_ctx
def cosign_cmd(
    ctx: CliContext,
    checkpoint_file: Path,
    key_path: Path,
    name: str | None,
    log_key: Path | None,
    log_dir: Path | None,
    out: Path | None,
) -> None:
    """Cosign a log's head as a witness (C2SP tlog-cosignature), once it is proven
    consistent with the last head this home cosigned for that log."""
    home = Home(ctx.home).require()
    signed = tlog.read_checkpoint(checkpoint_file)
    if log_key is not None:
        verifier = Verifier.from_vkey(tlog.small_text(log_key), source=str(log_key))
    else:
        verifier = _log_named(home, signed.checkpoint.origin)
    head = signed.verify(verifier, source=str(checkpoint_file))
    state = tlog.witness_state(home, head.origin)
    previous = None
    if state.is_file():
        previous = tlog.read_checkpoint(state).verify(verifier, source=str(state))
    if previous is not None and previous.size > 0:
        if head.size > previous.size:
            log = open_log(log_dir, verifier) if log_dir else tlog.open_home_log(home)
            if log.origin != head.origin or log.size < head.size:
                raise NoteError(
                    f"{checkpoint_file}: the log at hand has {log.size} entries, fewer than the "
                    f"head's {head.size}",
                    hint="give a current copy of the log's tiles with --log-dir",
                )
            if log.root_at(head.size) != head.root:
                raise NoteError(
                    f"{checkpoint_file}: the head does not match the log's tiles at size "
                    f"{head.size}: the log forked",
                    hint="keep both as evidence; do not cosign",
                )
            proof = log.prove_consistency(previous.size, head.size)
        else:
            proof = []
        try:
            verify_consistency(previous.size, head.size, previous.root, head.root, proof)
        except TlogError as e:
            raise NoteError(
                f"{checkpoint_file}: not consistent with the head of size {previous.size} this "
                f"witness cosigned before: {e.message}",
                hint="do not cosign; keep both checkpoints as evidence",
            ) from e
    witness = _witness_signer(key_path, name)
    cosigned = signed.cosign(witness, int(time.time()))
    state.parent.mkdir(parents=True, exist_ok=True)
    write_durably(state, cosigned.to_text().encode())
    if out is not None:
        _write(out, cosigned.to_text().encode())
    data = {
        "origin": head.origin,
        "size": head.size,
        "witness": witness.verifier.vkey(),
        "checkpoint": cosigned.to_text(),
    }
    text = cosigned.to_text().rstrip("\n") if out is None else f"wrote {out}"
    ctx.emit(data, f"{text}\nwitness key: {witness.verifier.vkey()}")


@log_group.command("trusted-root")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def trusted_root_cmd(ctx: CliContext, out: Path) -> None:
    """Write a Sigstore trusted_root.json naming this appliance's log keys, and on a shared
    state those of every other home's log the state records."""
    home = Home(ctx.home).require()
    doc = tlog.trusted_root(home, [(r.log, r.started) for r in recorded_logs(home)])
    _write(out, canonical.dumps(doc) + b"\n")
    ctx.emit({"out": str(out), "tlogs": len(doc["tlogs"])}, f"wrote {out}")


@log_group.command("rotate")
@click.option("--origin", default=None, help="The new shard's name [default: stella.<id>/log/<n>].")
@pass_ctx
def rotate_cmd(ctx: CliContext, origin: str | None) -> None:
    """Freeze the current log shard read-only (still trusted for its proofs) and start a new
    one with a new key at the next attestation."""
    home = Home(ctx.home).require()
    frozen, old, new = tlog.rotate(home, now=datetime.now(UTC), origin=origin)
    head = tlog.read_checkpoint(frozen / "checkpoint")
    ctx.emit(
        {
            "frozen": str(frozen),
            "origin": old,
            "size": head.checkpoint.size,
            "checkpoint": head.to_text(),
            "newOrigin": new,
        },
        f"froze {old} at size {head.checkpoint.size} in {frozen} (read-only, still trusted)\n"
        f"the next attestation starts {new} with a new key; run 'stella log trusted-root' "
        "again for verifiers",
    )


@log_group.command("list")
@pass_ctx
def list_cmd(ctx: CliContext) -> None:
    """The transparency logs this home trusts: its own (current and frozen shards) and, on a
    shared state, every other home's log the state records."""
    home = Home(ctx.home).require()
    recorded = recorded_logs(home)
    in_state = {r.log for r in recorded}
    own = tlog.trusted_logs(home)
    current = (tlog.root(home) / "log.pub").is_file()
    rows = [
        {
            "origin": log.name,
            "vkey": log.vkey(),
            "where": "this home" if n == 0 and current else "frozen",
            "recorded": log in in_state,
        }
        for n, log in enumerate(own)
    ]
    rows += [
        {**r.to_dict(), "where": "shared state", "recorded": True}
        for r in recorded
        if r.log not in own
    ]
    text = "\n".join(f"{r['origin']}  ({r['where']})  {r['vkey']}" for r in rows)
    ctx.emit({"logs": rows}, text or "no transparency log yet")
