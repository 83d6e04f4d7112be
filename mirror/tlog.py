"""The mirror's own transparency log: every bundle statement it exports is appended to it.

::

    HOME/mirror/tlog/
      checkpoint, tile/…     the log (C2SP tlog-tiles; see bundles.tlog.log)
      log.key, log.pub       its Ed25519 key (log.key is mode 0600, encrypted with
                             STELLA_KEY_PASSPHRASE when set)
      origin                 its name, ``stella-mirror.<log key id>/log``

The key is made by ``stella-mirror keys generate`` (which names it in the trust root) or by
the first export. The trust root's ``x-stella-log-keys`` lists it; appliances then refuse
bundles whose statement is not in this log (docs/transparency.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from bundles import dsse
from bundles.errors import KeyError_
from bundles.keys import KeyType, PrivateKey, PublicKey, passphrase_from_env
from bundles.tlog import TlogError
from bundles.tlog.carried import CONSISTENCY_SIZES, make_proof
from bundles.tlog.entry import dsse_body
from bundles.tlog.log import TileLog, open_log, write_durably
from bundles.tlog.note import NoteSigner, Verifier, raw_ed25519

DIRNAME: Final = "tlog"
ORIGIN_LIMIT: Final = 1024


def root(workspace: Path) -> Path:
    return workspace / DIRNAME


def _origin_file(directory: Path) -> str:
    with open(directory / "origin", "rb") as fh:
        data = fh.read(ORIGIN_LIMIT + 1)
    if len(data) > ORIGIN_LIMIT:
        raise TlogError(f"{directory / 'origin'}: larger than {ORIGIN_LIMIT} bytes")
    return data.decode("utf-8", "replace").strip()


def signer(workspace: Path) -> NoteSigner:
    """The mirror's log key, made on first use (Ed25519, as C2SP notes require)."""
    directory = root(workspace)
    key_path = directory / "log.key"
    if not key_path.is_file():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = PrivateKey.generate(KeyType.ED25519)
        with contextlib.suppress(KeyError_):  # another process made it first: use theirs
            fresh.save(key_path, passphrase_from_env())
    key = PrivateKey.load(key_path, passphrase_from_env())
    if not (directory / "log.pub").is_file():
        key.public_key.save(directory / "log.pub")
    if not (directory / "origin").is_file():
        origin = f"stella-mirror.{key.public_key.keyid[:16]}/log"
        write_durably(directory / "origin", (origin + "\n").encode())
    made = NoteSigner(_origin_file(directory), key)
    if made.verifier != verifier(workspace):
        raise TlogError(
            f"{key_path}: the log key is not the one log.pub and origin record",
            hint="restore the mirror's tlog/ from a backup; never replace a log's key in place",
        )
    return made


def verifier(workspace: Path) -> Verifier:
    directory = root(workspace)
    return Verifier(_origin_file(directory), raw_ed25519(PublicKey.load(directory / "log.pub")))


def open_mirror_log(workspace: Path) -> TileLog:
    made = signer(workspace)
    return open_log(root(workspace), made.verifier, made)


def log_statement(workspace: Path, envelope: dsse.Envelope, keys: Mapping[str, PublicKey]) -> bytes:
    """Append the statement envelope to the mirror's log; the ``statement.tlog.json`` member:
    its entry with the inclusion proof under the new head, and consistency proofs from the
    log's earlier heads (up to the last :data:`CONSISTENCY_SIZES` sizes). Returns once the
    entry and the head are durable."""
    log = open_mirror_log(workspace)
    body = dsse_body(envelope, keys)
    index, _ = log.append([body])
    assert log.head is not None
    size = log.size
    earlier = range(max(1, size - CONSISTENCY_SIZES), size)
    return make_proof(
        log.verifier,
        index,
        body,
        log.prove_inclusion(index),
        log.head,
        {m: log.prove_consistency(m) for m in earlier},
    )
