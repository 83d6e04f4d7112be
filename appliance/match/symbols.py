"""Symbol-level evidence for Go findings: does the binary link the vulnerable functions?

A Go vulndb record names, per affected package, the import paths and the functions in them
that hold the vulnerable code (``affected[].ecosystem_specific.imports[].path`` and
``.symbols``; no ``symbols`` means every function of the path). The go-binary analyzer records
the functions each binary links (:mod:`appliance.scanner.analyzers.gosymbols`). A finding whose
records name imports becomes ``present`` when one named function (or, for a path with no
symbols, the path itself) is linked, ``not-present`` when the table was read and none is, and
``unknown`` when the table was not read. A record with no imports leaves the finding at the
package level. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

from appliance.match.model import Evidence, Reachability
from appliance.scanner.analyzers.gocalls import MAIN, CallTree, Reach, chain_text
from appliance.scanner.analyzers.gosymbols import SymbolSet
from appliance.scanner.model import Package, PackageType

_NOTE_SYMBOLS: Final = 6  # symbols named in a note before "and N more"


@dataclass(frozen=True, slots=True)
class SymbolVerdict:
    state: Reachability
    note: str


def _for_platform(item: Mapping[str, Any], key: str, value: str) -> bool:
    """Whether an import applies to a binary built for ``value`` (``goos``/``goarch`` lists
    restrict it); a binary whose platform is not known gets every import."""
    listed = item.get(key)
    if not value or not isinstance(listed, list) or not listed:
        return True
    return value in listed


def wanted(
    entries: Iterable[Mapping[str, Any]], goos: str = "", goarch: str = ""
) -> list[tuple[str, str]]:
    """(import path, symbol) pairs the entries name for a binary built for ``goos``/``goarch``;
    symbol ``""`` for a whole path."""
    out: list[tuple[str, str]] = []
    for entry in entries:
        specific = entry.get("ecosystem_specific")
        imports = specific.get("imports") if isinstance(specific, Mapping) else None
        if not isinstance(imports, list):
            continue
        for item in imports:
            path = item.get("path") if isinstance(item, Mapping) else None
            if not isinstance(path, str) or not path:
                continue
            if not (_for_platform(item, "goos", goos) and _for_platform(item, "goarch", goarch)):
                continue
            names = item.get("symbols")
            if isinstance(names, list) and names:
                out.extend((path, n) for n in names if isinstance(n, str) and n)
            else:
                out.append((path, ""))
    return sorted(set(out))


def _listed(pairs: list[tuple[str, str]]) -> str:
    shown = [f"{p}.{s}" if s else p for p, s in pairs[:_NOTE_SYMBOLS]]
    more = len(pairs) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def judge(package: Package, entries: Iterable[Mapping[str, Any]]) -> SymbolVerdict | None:
    """The symbol-level state of one finding on ``package``, or None when the records name no
    vulnerable functions (or the package is not a Go binary's)."""
    if package.type is not PackageType.GOLANG:
        return None
    entries = list(entries)
    pairs = wanted(entries)
    if not pairs:
        return None
    where = ", ".join("/" + p.lstrip("/") for p in package.locations) or "the binary"
    if not package.symbols:
        return SymbolVerdict(
            Reachability.UNKNOWN,
            f"the function table of {where} was not read: whether it links "
            f"{_listed(pairs)} is unknown",
        )
    try:
        linked = _symbol_set(package.symbols)
    except ValueError as e:
        return SymbolVerdict(
            Reachability.UNKNOWN, f"the recorded function set of {where} is unreadable ({e})"
        )
    platform = f"{linked.goos}/{linked.goarch}"
    pairs = wanted(entries, linked.goos, linked.goarch)
    if not pairs:  # every vulnerable import is for other platforms
        return SymbolVerdict(
            Reachability.NOT_PRESENT,
            f"{where} is built for {platform}; the vulnerable code is for other platforms",
        )
    present = [(p, s) for p, s in pairs if (f"{p}.{s}" if s else p) in linked]
    if present:
        return _reached(package, where, present)
    return SymbolVerdict(
        Reachability.NOT_PRESENT,
        f"{where} links none of {_listed(pairs)} (its function table was read)",
    )


@lru_cache(maxsize=8)
def _symbol_set(encoded: str) -> SymbolSet:
    return SymbolSet(encoded)  # a binary's findings all read the same set


@lru_cache(maxsize=8)
def _tree(encoded: str) -> CallTree:
    return CallTree(encoded)  # and the same tree


@lru_cache(maxsize=4096)
def _reaches(tree: CallTree, path: str, symbol: str) -> Reach | None:
    """Where the tree places a vulnerable symbol, or for a whole import path (no symbol) its
    best placed function. Kept per tree: a binary's findings ask for the same ones."""
    if symbol:
        return tree.reach(f"{path}.{symbol}")
    found = [tree.reach(n) for n in tree.index if n.startswith(path + ".")]
    return min((r for r in found if r), key=_rank, default=None)


def _rank(reach: Reach) -> tuple[bool, bool, int, tuple[tuple[str, str], ...]]:
    """The chain a note shows: from main before an initialiser before an indirect call,
    then the shortest."""
    return (not reach.from_main, reach.root != MAIN, len(reach.chain), reach.chain)


def _reached(package: Package, where: str, present: list[tuple[str, str]]) -> SymbolVerdict:
    """A linked finding judged by the binary's call tree: ``reachable`` when a chain from
    ``main`` (or a package initialiser) reaches a vulnerable function, ``present`` when only an
    indirect call could, ``present-not-reached`` when nothing in the over-approximation does
    (docs/reachability.md)."""
    linked = f"{where} links {_listed(present)}"
    if not package.calls:
        return SymbolVerdict(Reachability.PRESENT, f"{linked} (calls from main not analysed)")
    try:
        tree = _tree(package.calls)
    except ValueError as e:
        return SymbolVerdict(
            Reachability.PRESENT, f"{linked} (its recorded call tree is unreadable: {e})"
        )
    if tree.reason:
        return SymbolVerdict(
            Reachability.PRESENT, f"{linked} (calls from main not analysed: {tree.reason})"
        )
    found = [r for r in (_reaches(tree, p, s) for p, s in present) if r is not None]
    if not found:
        return SymbolVerdict(
            Reachability.PRESENT_NOT_REACHED,
            f"{linked}, but its call graph reaches none of them: no chain of direct calls, "
            "inlining or address-taking leads there from main, a package initialiser or any "
            "function whose address the binary stores",
        )
    best = min(found, key=_rank)
    if best.from_main:
        return SymbolVerdict(Reachability.REACHABLE, f"{linked}; call chain: {chain_text(best)}")
    return SymbolVerdict(
        Reachability.PRESENT,
        f"{linked}; no chain from main reaches them, only an indirect call could: "
        f"{chain_text(best)}",
    )


def apply(evidence: Evidence, verdict: SymbolVerdict | None) -> Evidence:
    """The finding's evidence with the symbol-level state and its note."""
    if verdict is None:
        return evidence
    return replace(evidence, reachability=verdict.state, reachability_note=verdict.note)
