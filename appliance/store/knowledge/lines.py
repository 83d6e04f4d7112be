"""Datasets as streams of canonical lines: split into lines, each line's record id and key,
the order checks a signed dataset must pass, and the index rows a record yields."""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

from appliance.ecosystems import normalize_name
from appliance.store.knowledge.schema import (
    KnowledgeError,
)
from bundles.digest import Hasher


def line_batches(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The lines (without their newline) of each chunk of a stream, a list per chunk; the
    stream must end in ``\\n``."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        raise KnowledgeError("dataset does not end with a newline (truncated?)")


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (without their newline) from a stream of chunks; the stream must end in ``\\n``."""
    for lines in line_batches(chunks):
        yield from lines


def _line_id(line: bytes, where: str) -> tuple[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise KnowledgeError(f"{where}: a line is not JSON: {e}") from e
    rid = doc.get("id") if isinstance(doc, dict) else None
    if not isinstance(rid, str) or not rid:
        raise KnowledgeError(f"{where}: a record has no string id")
    return rid, doc


_ID_OF: Final = operator.itemgetter("id")


def _ids(lines: list[bytes], where: str) -> list[str]:
    """The ids of many lines, as :func:`_line_id` finds them but with the loop in C, each
    document dropped as soon as its id is taken (holding a chunk's documents alive makes the
    cyclic garbage collector scan them again and again); a bad line is reported as
    :func:`_line_id` reports it."""
    try:
        ids = list(map(_ID_OF, map(orjson.loads, lines)))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ids = []
    if len(ids) != len(lines) or not set(map(type, ids)) <= {str} or "" in ids:
        return [_line_id(line, where)[0] for line in lines]  # raises, naming what is wrong
    return ids


def _check_order(ids: list[str], previous: str | None, where: str) -> str | None:
    """Record ids must strictly increase, from ``previous`` (the id before them) on; returns
    the last."""
    if not (
        (previous is None or not ids or ids[0] > previous)
        and all(map(operator.lt, ids, itertools.islice(ids, 1, None)))
    ):
        for rid in ids:  # find the first out of order, to name it
            if previous is not None and rid <= previous:
                raise _out_of_order(rid, where)
            previous = rid
    return ids[-1] if ids else previous


def _out_of_order(rid: str, where: str) -> KnowledgeError:
    return KnowledgeError(f"{where}: record ids are not strictly increasing at {rid!r}")


def _record_key(line: bytes) -> int:
    """The signed 64-bit rowid of a record line: the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(line).digest()[:8], "big", signed=True)


def _alias_rows(doc: Any, rid: str, record: int) -> Iterator[tuple[str, str, int]]:
    """The alias index rows of a GitHub advisory (none for other records)."""
    if rid.startswith("GHSA-"):
        for alias in doc.get("aliases") or ():
            if isinstance(alias, str):
                yield alias, rid, record


def _index_rows(doc: Any, rid: str, record: int) -> Iterator[tuple[str, str, str, int]]:
    for affected in doc.get("affected") or ():
        package = affected.get("package") if isinstance(affected, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if isinstance(ecosystem, str) and isinstance(name, str):
            yield ecosystem, normalize_name(ecosystem, name), rid, record


def _tee(chunks: Iterable[bytes], hasher: Hasher) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
