"""Module- and function-level evidence for Python findings: is the vulnerable code reached?

Which modules and functions hold an advisory's vulnerable code comes from the record's
``affected[].ecosystem_specific.imports[]`` (``path`` a module, ``symbols`` names in it, the
shape Go's vulnerability database uses; PyPI records rarely carry it), else from the
snapshot's curated ``reachability`` datasets (:class:`~appliance.match.source.Curated`,
records keyed by advisory id: ``affected[].package`` and ``affected[].imports[]``). The
image's Python programs are analysed once per match (:mod:`appliance.scanner.pyreach`):

- ``reachable``: a static chain from an entrypoint names one of the functions (or imports
  one of the modules); the chain is the evidence;
- ``present-not-reached``: the package is imported, the named module or function is in the
  installed version, the static closure does not reach any of them, and nothing the reading
  cannot follow could (a computed import or ``exec``, a ``getattr`` with a computed name on
  the module, an extension module of the package, a file that does not parse);
- ``unknown``: only the possible closure reaches it, a reached file does not parse, or the
  named code is not found in the installed version;
- a finding whose records name nothing, or whose package no entrypoint imports, keeps its
  package-level state (``reachable`` from the entry trace, else ``unknown``).

Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from appliance.ecosystems import normalize_name
from appliance.match.model import Evidence, Reachability
from appliance.match.source import AdvisorySource, Curated
from appliance.scanner.model import Package, PackageType
from appliance.scanner.pyreach import Analysis, PythonProgram, analyse

_NOTE_NAMES: Final = 6
_ECOSYSTEM: Final = "PyPI"


@dataclass(frozen=True, slots=True)
class PyVerdict:
    """``state`` None keeps the package-level state (the note says why)."""

    state: Reachability | None
    note: str
    chain: tuple[str, ...] = ()


def _imports(item: Any) -> list[tuple[str, str]]:
    """(module, symbol) pairs of an ``imports`` list; symbol ``""`` for a whole module."""
    out: list[tuple[str, str]] = []
    if not isinstance(item, list):
        return out
    for entry in item:
        path = entry.get("path") if isinstance(entry, Mapping) else None
        if not isinstance(path, str) or not path:
            continue
        names = entry.get("symbols")
        if isinstance(names, list) and names:
            out.extend((path, n) for n in names if isinstance(n, str) and n)
        else:
            out.append((path, ""))
    return out


def targets(
    package: str, entries: Iterable[Mapping[str, Any]], curated: Iterable[Mapping[str, Any]]
) -> tuple[list[tuple[str, str]], str]:
    """The vulnerable (module, symbol) pairs the records name for ``package``, and where
    they come from (``"record"``, or the curated record's ``source``)."""
    found: list[tuple[str, str]] = []
    for entry in entries:
        specific = entry.get("ecosystem_specific")
        if isinstance(specific, Mapping):
            found.extend(_imports(specific.get("imports")))
    if found:
        return sorted(set(found)), "the advisory record"
    key = normalize_name(_ECOSYSTEM, package)
    sources: set[str] = set()
    for record in curated:
        for affected in record.get("affected") or ():
            pkg = affected.get("package") if isinstance(affected, Mapping) else None
            if not isinstance(pkg, Mapping) or pkg.get("ecosystem") != _ECOSYSTEM:
                continue
            name = pkg.get("name")
            if isinstance(name, str) and normalize_name(_ECOSYSTEM, name) == key:
                pairs = _imports(affected.get("imports"))
                if pairs:
                    found.extend(pairs)
                    sources.add(f"curated record {record.get('id')}")
    return sorted(set(found)), ", ".join(sorted(sources))


def _listed(pairs: Sequence[tuple[str, str]]) -> str:
    shown = [f"{m}.{s}" if s else m for m, s in pairs[:_NOTE_NAMES]]
    more = len(pairs) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


class PythonJudge:
    """Judges the Python findings of one inventory; the program is analysed on first use."""

    def __init__(self, program: PythonProgram | None, source: AdvisorySource) -> None:
        self.program = program
        self.curated = source if isinstance(source, Curated) else None
        self._analysis: Analysis | None = None

    @property
    def analysis(self) -> Analysis | None:
        if self._analysis is None and self.program is not None and self.program.roots:
            self._analysis = analyse(self.program)
        return self._analysis

    def judge(
        self, package: Package, purl: str, ids: Iterable[str], entries: Iterable[Mapping[str, Any]]
    ) -> PyVerdict | None:
        """The function-level state of one finding, or None to keep the package level."""
        if package.type is not PackageType.PYPI:
            return None
        analysis = self.analysis
        if analysis is None:
            return None
        curated = self.curated.reach_records(ids) if self.curated is not None else ()
        pairs, origin = targets(package.name, entries, curated)
        if not pairs:
            return PyVerdict(
                None,
                "the advisory names no vulnerable module or function (no ecosystem_specific "
                "imports, no curated record): judged at the package level",
            )
        if not analysis.package_reached(purl):
            return PyVerdict(
                None,
                f"{origin} names {_listed(pairs)}; no entrypoint's Python imports reach "
                f"{package.name}: judged at the package level",
            )
        return _judge(analysis, pairs, origin, purl)


def _node(analysis: Analysis, module: str, symbol: str) -> tuple[str | None, str]:
    """The node of a named module or function, or None and why it is not found."""
    if module not in analysis.paths:
        return None, f"module {module} is not in the installed package"
    if not symbol:
        return module, ""
    facts = analysis.facts(module)
    if not facts:
        return None, f"{module} is not Python source (/{analysis.paths[module]})"
    if "e" in facts:
        return None, f"/{analysis.paths[module]} does not parse ({facts['e']})"
    node = analysis.in_module(module, symbol) or analysis.resolve(symbol, module)
    if node is None or (node.startswith(module + ":") and node != f"{module}:{symbol}"):
        return None, f"{module} defines no {symbol} in the installed version"
    return node, ""


def _judge(analysis: Analysis, pairs: list[tuple[str, str]], origin: str, purl: str) -> PyVerdict:
    reached: list[tuple[tuple[str, str], tuple[str, ...]]] = []
    possible: list[tuple[str, str]] = []
    missing: list[str] = []
    for pair in pairs:
        node, why = _node(analysis, *pair)
        if node is None:
            missing.append(why)
        elif node in analysis.static:
            reached.append((pair, analysis.chain(node)))
        elif node in analysis.parent:
            possible.append(pair)
    method = any("." in symbol for (_, symbol), _ in reached)
    if reached:
        _, chain = min(reached, key=lambda r: (len(r[1]), r[0]))
        note = (
            f"{origin}: {_listed([p for p, _ in reached])} reached from the entrypoint by a "
            f"static chain of imports and references"
        )
        if method:
            note += " (a class in use counts as using all its methods)"
        return PyVerdict(Reachability.REACHABLE, note, chain)
    if missing:
        return PyVerdict(
            Reachability.UNKNOWN,
            f"{origin} names {_listed(pairs)}: " + "; ".join(sorted(set(missing))),
        )
    if possible:
        return PyVerdict(
            Reachability.UNKNOWN,
            f"{origin}: {_listed(possible)} not reached by a static chain, but a getattr with "
            "a computed name on its module in the reached code could reach it",
        )
    if analysis.escaped:
        shown = sorted(set(analysis.sites), key=lambda s: (s.path, s.line))[:3]
        sites = ", ".join(s.text() for s in shown)
        return PyVerdict(
            Reachability.UNKNOWN,
            f"{origin}: {_listed(pairs)} not reached by a static chain, but a dynamic import "
            f"or exec in the reached code may load any module and call anything"
            + (f" (e.g. {sites})" if sites else ""),
        )
    if purl in analysis.opaque:
        return PyVerdict(
            Reachability.UNKNOWN,
            f"{origin}: {_listed(pairs)} not reached by a static chain, but an extension "
            "module of the package is reached, and its calls cannot be read",
        )
    if analysis.blind:
        files = ", ".join("/" + p for p in sorted(analysis.blind)[:3])
        return PyVerdict(
            Reachability.UNKNOWN,
            f"{origin}: {_listed(pairs)} not reached, but reached files could not be read as "
            f"Python ({files}: a syntax error, or over a size cap), so the trace is not complete",
        )
    return PyVerdict(
        Reachability.PRESENT_NOT_REACHED,
        f"{origin}: the package is imported, but no entrypoint reaches {_listed(pairs)} "
        "(static imports and references; the reached code has no computed import, exec or "
        "extension module of the package, and no file it could not read)",
    )


def apply(evidence: Evidence, verdict: PyVerdict | None) -> Evidence:
    """The finding's evidence with the function-level state, its note and chain."""
    if verdict is None:
        return evidence
    return replace(
        evidence,
        reachability=verdict.state or evidence.reachability,
        reachability_note=verdict.note,
        reachability_chain=verdict.chain,
    )
