"""Caps on untrusted input: one registry, one error, one way to raise a cap.

Every read of bytes that did not come from this machine's own stores is bounded before it
allocates: a size, a line length, a JSON nesting depth, a decompression ratio and total. Each
bound is a :class:`Cap` declared where it is enforced, with :func:`cap`, and registered here under
a dotted name (``bundle.statement_bytes``). docs/limits.md lists every cap with its default; a
test keeps the two in step.

An operator who trusts an input larger than a default raises that one cap with an environment
variable named after it (``STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=64M``). The variable can raise or
lower the cap; it is read each time the cap is checked, so a long-running service takes it from
its unit file. A refusal names the cap, its value and the variable.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from bundles.errors import SizeLimitError, UsageError

_ENV_PREFIX: Final = "STELLA_LIMIT_"
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_AMOUNT: Final = re.compile(r"(\d+)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_FACTORS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Unit(enum.StrEnum):
    """What a cap counts."""

    BYTES = "bytes"
    COUNT = "count"
    DEPTH = "depth"
    RATIO = "ratio"


@dataclass(frozen=True, slots=True)
class Cap:
    """One bound on untrusted input."""

    name: str  # dotted, e.g. "bundle.statement_bytes"
    default: int
    unit: Unit
    what: str  # what is bounded, e.g. "the signed statement of a bundle"

    @property
    def env(self) -> str:
        return _ENV_PREFIX + self.name.replace(".", "_").upper()

    def value(self) -> int:
        """The cap in force: the environment's value if set, else the default."""
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        return parse_amount(raw, self)

    def describe(self, amount: int) -> str:
        return human(amount, self.unit)


class LimitError(SizeLimitError):
    """An input passed a cap. ``cap`` names which."""

    def __init__(self, message: str, *, cap: Cap, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cap = cap


_CAPS: dict[str, Cap] = {}
#: Every cap declared so far, by name (modules declare theirs when imported).
CAPS: Final = MappingProxyType(_CAPS)


def cap(name: str, default: int, unit: Unit, what: str) -> Cap:
    """Declare a cap; a second declaration of one name is a programming error."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"cap name {name!r} is not dotted lower-case words")
    if name in _CAPS:
        raise RuntimeError(f"cap {name} declared twice")
    if default <= 0:
        raise ValueError(f"cap {name} needs a positive default")
    made = Cap(name, default, unit, what)
    _CAPS[name] = made
    return made


def parse_amount(text: str, c: Cap) -> int:
    """``64M``, ``2GiB``, ``1048576``: a positive whole number, binary suffixes allowed for
    bytes."""
    m = _AMOUNT.fullmatch(text.strip())
    suffix = (m.group(2) or "").upper().rstrip("B").rstrip("I") if m else ""
    if m is None or (suffix and c.unit is not Unit.BYTES) or int(m.group(1)) <= 0:
        raise UsageError(
            f"{c.env}={text!r} is not a valid {c.unit.value} cap",
            hint="give a positive whole number"
            + (", optionally with K, M, G or T" if c.unit is Unit.BYTES else ""),
        )
    return int(m.group(1)) * _FACTORS[suffix]


def human(amount: int, unit: Unit) -> str:
    if unit is not Unit.BYTES:
        return f"{amount:,}" + (":1" if unit is Unit.RATIO else "")
    for suffix, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if amount >= factor and amount % factor == 0:
            return f"{amount // factor} {suffix}"
    return f"{amount:,} bytes"


def exceeded(c: Cap, subject: str, *, found: int | None = None) -> LimitError:
    """The refusal for ``subject`` passing ``c``: names the cap, its value and how to raise it."""
    limit = c.value()
    seen = "" if found is None else f" (found {c.describe(found)})"
    return LimitError(
        f"{subject}: {c.what} is over the {c.name} cap of {c.describe(limit)}{seen}",
        cap=c,
        hint=f"if this input is trusted and that large, raise the cap with {c.env}=N "
        "(docs/limits.md)",
    )


def check(c: Cap, amount: int, subject: str) -> None:
    """Refuse ``amount`` when it passes the cap in force (call before allocating it)."""
    if amount > c.value():
        raise exceeded(c, subject, found=amount)
