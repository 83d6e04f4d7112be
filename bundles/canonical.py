"""Canonical JSON (RFC 8785, JCS) for everything that is hashed or signed.

Serialization is delegated to the ``rfc8785`` library (ECMAScript number formatting, UTF-16
key ordering), except for values of plain types, which Python's own encoder writes to the same
bytes (see ``_FAST``). Parsing of untrusted documents is strict: duplicate keys, NaN/Infinity and
documents over a size limit are refused, because two readers must never disagree about what
a signed document says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import rfc8785

from bundles.bounded import JSON_BYTES, check_json, read_capped
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, SizeLimitError

DEFAULT_LIMIT: Final = JSON_BYTES.default  # larger documents are refused unless asked for


def dumps(value: Any) -> bytes:
    """Serialize ``value`` as RFC 8785 canonical JSON bytes.

    JSON numbers are IEEE 754 doubles in JCS. An integer beyond ±(2**53 - 1) is written only
    when the double nearest to it reads back as the same number (so that
    ``dumps(loads(dumps(x)))`` is a fixed point and no reader sees another value); any other
    large integer is refused rather than silently rounded.
    """
    plain = _plain(value)
    if plain:
        try:
            fast = _integral_floats(value) if plain is _FLOATS else value
            return _FAST.encode(fast).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            pass  # the reference path below says what is wrong
    try:
        try:
            return rfc8785.dumps(value)
        except rfc8785.IntegerDomainError:
            return rfc8785.dumps(_exact_doubles(value))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as e:  # a lone surrogate key
        raise CanonicalJSONError(f"value cannot be written as canonical JSON: {e}") from e


_SAFE_INT = 2**53 - 1

# For a value of plain types only, Python's own encoder writes exactly the RFC 8785 bytes, in C:
# its escapes are JCS's (quote, backslash, the short forms of backspace, form feed, newline,
# return and tab, other control characters as lower-case \u00xx, everything else as is),
# integers within the safe range print alike, and keys of the Basic Multilingual Plane sort the
# same by code point as by UTF-16 code unit.
# So do floats written without an exponent: at least 1e-4 and below 1e16 in magnitude, Python's
# ``repr`` has the shortest digits that read back, as ECMAScript's, in the same fixed notation;
# one with an integral value is written as that integer (ECMAScript writes 3.0 as 3), which
# ``_integral_floats`` does first.
# Other floats (ECMAScript's exponent forms), large integers, keys beyond U+FFFF and any other
# type take the reference path (``rfc8785``); tests/bundles/test_canonical.py checks the two agree.
_FAST: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, check_circular=False
)


class _Plain(int):
    """What :func:`_plain` found: no (0), yes (1), yes once integral floats are integers (2)."""


_NO: Final = _Plain(0)
_YES: Final = _Plain(1)
_FLOATS: Final = _Plain(2)


def _plain(value: Any) -> _Plain:
    """Whether ``value`` holds only dicts with string keys below U+10000, lists, tuples,
    strings, booleans, None, integers within ±(2**53 - 1) and floats of magnitude 0 or from
    1e-4 to below 1e16 (an integral one within the integers' range), each of exactly that
    type: :data:`_FLOATS` when it holds an integral float."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return _YES
    if kind is int:
        return _YES if -_SAFE_INT <= value <= _SAFE_INT else _NO
    if kind is float:
        if value.is_integer():  # never NaN nor infinite
            return _FLOATS if -_SAFE_INT <= value <= _SAFE_INT else _NO
        return _YES if 1e-4 <= abs(value) < 1e16 else _NO
    if kind is dict:
        for key in value:
            if type(key) is not str or not (key.isascii() or max(key) <= "\uffff"):
                return _NO
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return _NO
    found = _YES
    for item in items:
        inner = _plain(item)
        if inner is not _YES:
            if inner is _NO:
                return _NO
            found = _FLOATS
    return found


def _integral_floats(value: Any) -> Any:
    """``value`` with every float of integral value as that integer (a plain value)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict:
        return {k: _integral_floats(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_integral_floats(v) for v in value]
    return value


def _exact_doubles(value: Any) -> Any:
    """Replace integers outside the safe range by the double that holds them exactly."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > _SAFE_INT:
        as_float = float(value) if abs(value) < 2**1024 else None
        if as_float is None or json.loads(rfc8785.dumps(as_float)) != value:
            raise CanonicalJSONError(
                f"integer {value} exceeds the safe integer range and would be rounded",
                hint="write it as a string",
            )
        return as_float
    if isinstance(value, dict):
        return {k: _exact_doubles(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact_doubles(v) for v in value]
    return value


def digest(value: Any) -> Digest:
    """The digest of ``value``'s canonical bytes."""
    return Digest.of_bytes(dumps(value))


def dumps_lines(values: Iterable[Any]) -> bytes:
    """Canonical JSON lines: one canonical object per line, each ending in ``\\n``."""
    return b"".join(dumps(v) + b"\n" for v in values)


def _reject_constant(name: str) -> Any:
    raise CanonicalJSONError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in pairs:
        if key in out:
            raise CanonicalJSONError(f"duplicate JSON object key {key!r}")
        out[key] = val
    return out


def loads(data: bytes | str, *, limit: int | None = None, source: str = "document") -> Any:
    """Parse JSON strictly: size- and depth-limited (checked before parsing, docs/limits.md),
    no duplicate keys, no NaN or Infinity.

    ``limit`` is a caller's bound below the ``json.document_bytes`` cap; ``source`` names the
    file or member in error messages.
    """
    check_json(data, source=source, limit=limit)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except CanonicalJSONError as e:
        raise CanonicalJSONError(f"{source}: {e.message}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise CanonicalJSONError(f"{source}: not valid JSON: {e}") from e


def load_file(path: Path, *, limit: int | None = None) -> Any:
    """Read and strictly parse a JSON file, naming it in any error."""
    try:
        size = path.stat().st_size
        bound = JSON_BYTES.value() if limit is None else limit
        if size > bound:
            raise SizeLimitError(
                f"{path}: {size:,} bytes is over the {JSON_BYTES.name} cap of "
                f"{JSON_BYTES.describe(bound)}",
                hint=f"if this document is trusted and that large, raise the cap with "
                f"{JSON_BYTES.env}=N (docs/limits.md)",
            )
        with open(path, "rb") as fh:  # in chunks: one read(bound + 1) allocates the bound
            data = read_capped(fh, JSON_BYTES, str(path), limit=bound)
    except OSError as e:
        raise CanonicalJSONError(f"{path}: cannot read: {e.strerror}") from e
    return loads(data, limit=limit, source=str(path))


def is_canonical(data: bytes) -> bool:
    """True when ``data`` is exactly the canonical serialization of what it encodes."""
    try:
        return dumps(loads(data)) == data
    except CanonicalJSONError:
        return False


def kind_of(value: Any) -> str:
    """What a parsed JSON value is, in the words an error message uses ("not a string")."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case _:
            return "an object"
