"""Curated reachability records: which modules and functions of a package hold an advisory's
vulnerable code, for advisories whose records do not say (PyPI records rarely carry
``ecosystem_specific``). One JSON document (``{"records": [...]}`` or a list), or JSON lines.

A record is keyed by advisory id (a CVE when there is one: findings are looked up by every id
and alias they carry) and names, per affected package, the modules (``imports[].path``) and
the functions, classes or methods in them (``imports[].symbols``, as written in the module:
``Session.send``; none means the whole module), and ``source``: where the names were checked
(the advisory, the fix commit). A record without a usable package, import or source is left
out with an unknown naming it; nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    ADVISORY_ID,
    DatasetType,
    FeedSource,
    ParseResult,
    as_list,
    json_records,
)

_DOTTED: Final = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_ECOSYSTEMS: Final = frozenset({"PyPI"})


def _imports(value: Any) -> list[dict[str, Any]] | str:
    out: list[dict[str, Any]] = []
    for index, item in enumerate(as_list(value)):
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not _DOTTED.match(path):
            return f"imports[{index}].path is not a dotted module name: {path!r}"
        symbols = item.get("symbols", [])
        if not isinstance(symbols, list) or not all(
            isinstance(s, str) and _DOTTED.match(s) for s in symbols
        ):
            return f"imports[{index}].symbols must be dotted names: {symbols!r}"
        out.append({"path": path, "symbols": sorted(set(symbols))} if symbols else {"path": path})
    if not out:
        return "no imports (module paths) named"
    return sorted(out, key=lambda i: i["path"])


class ReachabilityCuratedSource(FeedSource):
    kind = SourceKind.REACHABILITY_CURATED
    dataset_type = DatasetType.REACHABILITY

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for item, doc in json_records(members, result):
            records = doc.get("records") if isinstance(doc, dict) else doc
            if isinstance(doc, dict) and "id" in doc:
                records = [doc]
            if not isinstance(records, list):
                result.skip(item, "not a list of reachability records (or {'records': [...]})")
                continue
            for index, record in enumerate(records):
                where = f"{item}[{index}]" if len(records) > 1 else item
                problem = self._record(record, result)
                if problem:
                    result.skip(where, problem)
        return result

    @staticmethod
    def _record(record: Any, result: ParseResult) -> str:
        if not isinstance(record, dict):
            return "not a JSON object"
        rid = record.get("id")
        if not isinstance(rid, str) or not ADVISORY_ID.fullmatch(rid):
            return f"no valid 'id' (an advisory id): {rid!r}"
        source = record.get("source")
        if not isinstance(source, str) or not source.strip():
            return f"{rid}: no 'source' saying where the names were checked"
        affected: list[dict[str, Any]] = []
        for index, entry in enumerate(as_list(record.get("affected"))):
            package = entry.get("package") if isinstance(entry, dict) else None
            if (
                not isinstance(package, dict)
                or package.get("ecosystem") not in _ECOSYSTEMS
                or not isinstance(package.get("name"), str)
                or not package["name"]
            ):
                return f"{rid}: affected[{index}].package needs ecosystem PyPI and a name"
            imports = _imports(entry.get("imports"))
            if isinstance(imports, str):
                return f"{rid}: affected[{index}]: {imports}"
            affected.append(
                {
                    "package": {"ecosystem": package["ecosystem"], "name": package["name"]},
                    "imports": imports,
                }
            )
        if not affected:
            return f"{rid}: no 'affected' entries"
        aliases = sorted({a for a in as_list(record.get("aliases")) if isinstance(a, str)})
        out: dict[str, Any] = {"id": rid, "affected": affected, "source": source.strip()}
        if aliases:
            out["aliases"] = aliases
        for key in ("summary", "modified"):
            if isinstance(record.get(key), str):
                out[key] = record[key]
        result.records.append(out)
        return ""
