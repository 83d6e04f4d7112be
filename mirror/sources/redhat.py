"""Red Hat's CSAF 2.0 VEX documents, one per CVE
(``https://security.access.redhat.com/data/csaf/v2/vex/<year>/<cve>.json``; a directory, a tar
of them, or the ``csaf_vex_<date>.tar.zst`` archive unpacked).

Each document becomes one OSV-shaped record: ``id`` = ``document.tracking.id`` (the CVE),
``aliases`` = the CVE, ``summary`` = the title, ``details`` = the description note,
``severity[]`` = the CVSS vectors of ``vulnerabilities[].scores``, and one affected entry per
(RHEL major release, source package, module stream):

- the product tree is resolved through its relationships: a status product id names a component
  (an rpm: purl ``pkg:rpm/redhat/NAME@VERSION?arch=A&epoch=E``, or a NEVRA product id) *as a
  component of* a platform product (whose CPE names the release), possibly through a module
  (``nodejs:18:9020020230619032405:rhel9`` *as a component of* ``AppStream-9.2.0.Z.MAIN``), which
  becomes ``database_specific.module`` = ``nodejs:18``;
- releases: the main RHEL streams (CPE ``cpe:/o:redhat:enterprise_linux:9``,
  ``…:enterprise_linux:9::baseos``, ``…::appstream``, ``…::crb``) and UBI (``…:ubi:9``) give
  ``Red Hat:<major>``. Extended-support streams (EUS, AUS, E4S, TUS, ELS) are left out: an image's
  os-release does not say it follows one. Other Red Hat products (OpenShift, JBoss...) are not
  distributions and are left out; the count of both is in the dataset meta;
- the package is the source rpm when the document lists one (``.src``, ``arch=src``), else each
  binary rpm (the appliance looks records up by both names);
- ``fixed``: the range ``introduced 0, fixed EVR`` with the earliest fixed EVR of that release
  (epoch written only when not 0, as in ``1:3.0.7-27.el9``);
- otherwise a ``database_specific.status`` (no range): ``known_affected`` with a remediation
  ``Will not fix`` -> ``ignored``, ``Fix deferred`` -> ``postponed``, ``Out of support scope`` ->
  ``end-of-life``, anything else -> ``open``; ``under_investigation`` -> ``undetermined``;
  ``known_not_affected`` -> ``not-affected``; the vendor's text (remediation details or the
  VEX flag's justification) is ``database_specific.note``. When products of one entry disagree,
  fixed wins, then affected, then under investigation, then not affected;
- ``database_specific.severity`` is Red Hat's impact: the product's ``threats`` entry of
  category ``impact``, else ``document.aggregate_severity.text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import unquote

from bundles.rpmvercmp import evr_key
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    DatasetType,
    FeedSource,
    ParseResult,
    as_list,
    as_object,
    json_documents,
)

SCHEME: Final = "rpm"
ECOSYSTEM: Final = "Red Hat"
_MAIN_CPE: Final = re.compile(r"cpe:/[aoh]:redhat:(?:enterprise_linux|ubi):(\d+)(?:$|[:.])")
#: A platform product id without a CPE, as older documents name the main streams.
_MAIN_PLATFORM: Final = re.compile(r"(?:red_hat_enterprise_linux_|ubi)(\d+)")
_EXTENDED_CPE: Final = re.compile(r"cpe:/[aoh]:redhat:rhel_(?:eus|aus|e4s|tus|els)\b")
_NEVRA: Final = re.compile(
    r"(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-:]+)\.(?P<arch>[^.]+)"
)
_MODULE_ID: Final = re.compile(r"(?P<module>[^:/\s]+:[^:/\s]+)/(?P<name>[^/\s]+)")

#: product_status categories in order of precedence when products of one entry disagree.
_ORDER: Final = ("fixed", "known_affected", "under_investigation", "known_not_affected")
_STATUS: Final = {"under_investigation": "undetermined", "known_not_affected": "not-affected"}
#: Red Hat's remediation details for an affected product without a fix -> the status word.
_NO_FIX: Final = {
    "will not fix": "ignored",
    "fix deferred": "postponed",
    "out of support scope": "end-of-life",
}
_CVSS: Final = (("cvss_v4", "CVSS_V4"), ("cvss_v3", "CVSS_V3"), ("cvss_v2", "CVSS_V2"))


_JSON_TYPE: Final[dict[type, str]] = {str: "a string", list: "a list", dict: "an object"}


class _Bad(Exception):
    """A document field that cannot be used; carries the one-line reason."""


@dataclass(frozen=True, slots=True)
class _Rpm:
    name: str
    epoch: str
    version: str
    arch: str
    module: str | None

    @property
    def evr(self) -> str:
        return f"{self.epoch}:{self.version}" if self.epoch not in ("", "0") else self.version


@dataclass(slots=True)
class _Entry:
    """What one (release, package, module) gathered from the statuses of its products."""

    fixed: set[str] = field(default_factory=set)
    statuses: dict[str, str | None] = field(default_factory=dict)
    impacts: set[str] = field(default_factory=set)


class RedHatCSAFSource(FeedSource):
    kind = SourceKind.REDHAT_CSAF
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        skipped = {"extended_support": 0, "other": 0}
        for member, doc in json_documents(members, result):
            try:
                result.records.extend(_Document(doc, member.name, result, skipped).records())
            except _Bad as e:
                result.skip(member.name, str(e))
            except (AttributeError, TypeError, KeyError, ValueError) as e:
                # A field of an unexpected JSON type deep in the tree: the document is unusable,
                # the rest of the feed is not.
                result.skip(member.name, f"malformed CSAF document: {type(e).__name__}: {e}")
        result.meta.update({f"skipped_products_{k}": str(v) for k, v in skipped.items()})
        return result


def _get(obj: Any, path: str, kind: type) -> Any:
    """``obj[a][b]…`` for ``path`` ``a.b…``, checked to be a ``kind``; raises _Bad naming it."""
    value = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind):
        raise _Bad(f"field '{path}' missing or not {_JSON_TYPE[kind]}")
    return value


def _walk(branches: Any) -> Iterator[dict[str, Any]]:
    for branch in as_list(branches):
        if isinstance(branch, dict):
            if isinstance(branch.get("product"), dict):
                yield branch["product"]
            yield from _walk(branch.get("branches"))


def _purl_rpm(purl: str, module: str | None) -> _Rpm | None:
    if not purl.startswith("pkg:rpm/"):
        return None
    path, _, query = purl.removeprefix("pkg:rpm/").partition("?")
    qualifiers = dict(q.partition("=")[::2] for q in query.split("&") if q)
    _namespace, _, name_version = path.partition("/")
    name, _, version = name_version.partition("@")
    if "/" in name:  # a container image written as an rpm purl (``rhel9/ruby-30``)
        return None
    rpmmod = qualifiers.get("rpmmod")
    if rpmmod:
        module = ":".join(unquote(rpmmod).split(":")[:2])
    return _Rpm(
        unquote(name),
        qualifiers.get("epoch", "0"),
        unquote(version),
        qualifiers.get("arch", ""),
        module,
    )


class _Document:
    def __init__(self, doc: Any, member: str, result: ParseResult, skipped: dict[str, int]) -> None:
        if not isinstance(doc, dict):
            raise _Bad("not a CSAF document (a JSON object with 'document')")
        category = _get(doc, "document.category", str)
        if category != "csaf_vex":
            raise _Bad(f"field 'document.category' is {category!r}, not 'csaf_vex'")
        self.doc = doc
        self.member = member
        self.result = result
        self.skipped = skipped
        self.tracking_id = _get(doc, "document.tracking.id", str)
        self.products: dict[str, dict[str, Any]] = {
            p["product_id"]: p
            for p in _walk(as_object(doc.get("product_tree")).get("branches"))
            if isinstance(p.get("product_id"), str)
        }
        self.relations: dict[str, tuple[str, str]] = {}
        for rel in map(as_object, as_list(as_object(doc.get("product_tree")).get("relationships"))):
            pid = as_object(rel.get("full_product_name")).get("product_id")
            comp, plat = rel.get("product_reference"), rel.get("relates_to_product_reference")
            if isinstance(pid, str) and isinstance(comp, str) and isinstance(plat, str):
                self.relations[pid] = (comp, plat)

    def records(self) -> list[dict[str, Any]]:
        vulns = _get(self.doc, "vulnerabilities", list)
        out = []
        for index, vuln in enumerate(vulns):
            where = f"vulnerabilities[{index}]."
            if not isinstance(vuln, dict):
                raise _Bad(f"field '{where[:-1]}' is not an object")
            cve = vuln.get("cve")
            rid = self.tracking_id if len(vulns) == 1 or not isinstance(cve, str) else cve
            out.append(self._record(vuln, rid, cve if isinstance(cve, str) else None, where))
        return out

    # -- one vulnerability ------------------------------------------------------------------

    def _record(
        self, vuln: dict[str, Any], rid: str, cve: str | None, where: str
    ) -> dict[str, Any]:
        document = self.doc["document"]
        aggregate = as_object(document.get("aggregate_severity")).get("text")
        remedies = self._by_product(vuln.get("remediations"), where + "remediations")
        gathered = self._gather(vuln, remedies, rid, where)
        affected = [
            self._affected(major, name, module, entry, aggregate)
            for (major, name, module), entry in sorted(
                gathered.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
            )
        ]
        record: dict[str, Any] = {
            "id": rid,
            "modified": _get(self.doc, "document.tracking.current_release_date", str),
            "aliases": [cve] if cve else [],
            "affected": affected,
            "database_specific": {"source": "redhat-csaf"},
        }
        published = as_object(document.get("tracking")).get("initial_release_date")
        if isinstance(published, str):
            record["published"] = published
        title = vuln.get("title") or document.get("title")
        if isinstance(title, str):
            record["summary"] = title
        details = [
            n["text"]
            for n in map(as_object, as_list(vuln.get("notes")))
            if n.get("category") == "description" and isinstance(n.get("text"), str)
        ]  # fmt: skip
        if details:
            record["details"] = details[0]
        if isinstance(aggregate, str):
            record["database_specific"]["severity"] = aggregate
        cwe = as_object(vuln.get("cwe")).get("id")
        if isinstance(cwe, str):
            record["database_specific"]["cwe_ids"] = [cwe]
        severity = self._severity(vuln.get("scores"))
        if severity:
            record["severity"] = severity
        refs = [
            {"type": "ADVISORY" if r.get("category") == "self" else "WEB", "url": r["url"]}
            for r in map(as_object, as_list(vuln.get("references")))
            if isinstance(r.get("url"), str)
        ]
        seen = {r["url"] for r in refs}
        fixes = sorted({url for rs in remedies.values() for _c, _d, url in rs if url} - seen)
        refs += [{"type": "ADVISORY", "url": url} for url in fixes]
        if refs:
            record["references"] = refs
        return record

    def _gather(
        self,
        vuln: dict[str, Any],
        remedies: dict[str, list[tuple[str, str, str | None]]],
        rid: str,
        where: str,
    ) -> dict[tuple[int, str, str | None], _Entry]:
        """What each (release, package, module) of the vulnerability's product statuses says."""
        impacts = {
            pid: t["details"]
            for t in map(as_object, as_list(vuln.get("threats")))
            if t.get("category") == "impact" and isinstance(t.get("details"), str)
            for pid in as_list(t.get("product_ids"))
            if isinstance(pid, str)
        }  # fmt: skip
        flags = {
            pid: f["label"]
            for f in map(as_object, as_list(vuln.get("flags")))
            if isinstance(f.get("label"), str)
            for pid in as_list(f.get("product_ids"))
            if isinstance(pid, str)
        }
        status = vuln.get("product_status") or {}
        if not isinstance(status, dict):
            raise _Bad(f"field '{where}product_status' is not an object")
        gathered: dict[tuple[int, str, str | None], _Entry] = {}
        components: dict[tuple[int, str | None], list[tuple[str, str, _Rpm]]] = {}
        for category in sorted(status):
            pids = status[category]
            if category not in _ORDER:
                if pids:
                    self.result.skip(
                        f"{self.member} ({rid})",
                        f"field '{where}product_status.{category}' is not used by Red Hat VEX; "
                        "its products are left out",
                    )
                continue
            if not isinstance(pids, list):
                raise _Bad(f"field '{where}product_status.{category}' is not a list")
            for pid in pids:
                resolved = self._resolve(str(pid), rid, f"{where}product_status.{category}")
                if resolved is not None:
                    major, rpm = resolved
                    components.setdefault((major, rpm.module), []).append((category, pid, rpm))
        for (major, module), comps in components.items():
            has_src = any(rpm.arch == "src" for _c, _p, rpm in comps)
            for category, pid, rpm in comps:
                if has_src and rpm.arch != "src":
                    continue
                entry = gathered.setdefault((major, rpm.name, module), _Entry())
                if pid in impacts:
                    entry.impacts.add(impacts[pid])
                if category == "fixed":
                    if not rpm.version:
                        raise _Bad(
                            f"field '{where}product_status.fixed': product {pid!r} has no version"
                        )
                    entry.fixed.add(rpm.evr)
                    continue
                word, note = self._status(category, remedies.get(pid, []), flags.get(pid))
                entry.statuses.setdefault(word, note)
        return gathered

    def _by_product(
        self, remediations: Any, where: str
    ) -> dict[str, list[tuple[str, str, str | None]]]:
        out: dict[str, list[tuple[str, str, str | None]]] = {}
        for index, rem in enumerate(as_list(remediations)):
            if not isinstance(rem, dict) or not isinstance(rem.get("category"), str):
                raise _Bad(f"field '{where}[{index}].category' missing or not a string")
            details: str = rem["details"] if isinstance(rem.get("details"), str) else ""
            url: str | None = rem["url"] if isinstance(rem.get("url"), str) else None
            for pid in as_list(rem.get("product_ids")):
                if isinstance(pid, str):
                    out.setdefault(pid, []).append((rem["category"], details, url))
        return out

    @staticmethod
    def _status(
        category: str, remedies: list[tuple[str, str, str | None]], flag: str | None
    ) -> tuple[str, str | None]:
        if category == "known_affected":
            for rem_category, details, _url in remedies:
                if rem_category in ("none_available", "no_fix_planned"):
                    word = _NO_FIX.get(details.strip().lower(), "open")
                    return word, details or None
            return "open", None
        return _STATUS[category], flag

    def _resolve(self, pid: str, rid: str, where: str) -> tuple[int, _Rpm] | None:
        """(major, rpm) of a status product id; None (counted or reported) when it is no RHEL
        rpm."""
        if pid not in self.relations:
            self.result.skip(
                f"{self.member} ({rid})",
                f"field '{where}': product id {pid!r} is not a relationship of the product tree",
            )
            return None
        comp, platform = self.relations[pid]
        module: str | None = None
        if platform in self.relations:  # a module stream, itself a component of a platform
            module_ref, platform = self.relations[platform]
            module = ":".join(module_ref.split(":")[:2])
        product = as_object(self.products.get(platform))
        cpe = as_object(product.get("product_identification_helper")).get("cpe")
        cpe = cpe if isinstance(cpe, str) else ""
        major = _MAIN_CPE.match(cpe) or _MAIN_PLATFORM.fullmatch(platform)
        if major is None:
            self.skipped["extended_support" if _EXTENDED_CPE.match(cpe) else "other"] += 1
            return None
        rpm = self._rpm(comp, module)
        if rpm is None:
            self.skipped["other"] += 1
            return None
        return int(major.group(1)), rpm

    def _rpm(self, comp: str, module: str | None) -> _Rpm | None:
        product = as_object(self.products.get(comp))
        purl = as_object(product.get("product_identification_helper")).get("purl")
        if isinstance(purl, str):
            rpm = _purl_rpm(purl, module)
            if rpm is None:
                return None
            if not rpm.version and (m := _NEVRA.fullmatch(comp)):  # versionless purl
                evr = f"{m['version']}-{m['release']}"
                rpm = replace(rpm, epoch=m["epoch"] or "0", version=evr, arch=rpm.arch or m["arch"])
            if comp.endswith(".src") and not rpm.arch:
                rpm = replace(rpm, arch="src")
            return rpm
        if m := _NEVRA.fullmatch(comp):
            return _Rpm(
                m["name"], m["epoch"] or "0", f"{m['version']}-{m['release']}", m["arch"], module
            )
        if m := _MODULE_ID.fullmatch(comp):
            return _Rpm(m["name"], "0", "", "", m["module"])
        name = comp.removesuffix(".src")
        return _Rpm(name, "0", "", "src" if comp.endswith(".src") else "", module)

    @staticmethod
    def _affected(
        major: int, name: str, module: str | None, entry: _Entry, aggregate: Any
    ) -> dict[str, Any]:
        specific: dict[str, Any] = {"version_scheme": SCHEME}
        impact = _highest(entry.impacts) or (aggregate if isinstance(aggregate, str) else None)
        if impact is not None:
            specific["severity"] = impact
        if module is not None:
            specific["module"] = module
        out: dict[str, Any] = {"package": {"ecosystem": f"{ECOSYSTEM}:{major}", "name": name}}
        if entry.fixed:
            first = min(entry.fixed, key=evr_key)
            out["ranges"] = [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": first}]}
            ]
        else:
            word = min(entry.statuses, key=_STATUS_ORDER.index)
            specific["status"] = word
            if entry.statuses[word]:
                specific["note"] = entry.statuses[word]
        out["database_specific"] = specific
        return out

    @staticmethod
    def _severity(scores: Any) -> list[dict[str, str]]:
        found = set()
        for score in map(as_object, as_list(scores)):
            for key, kind in _CVSS:
                vector = as_object(score.get(key)).get("vectorString")
                if isinstance(vector, str):
                    found.add((kind, vector))
        return [{"type": kind, "score": vector} for kind, vector in sorted(found)]


#: Status words of entries without a fix, most affected first.
_STATUS_ORDER: Final = (
    "open",
    "ignored",
    "postponed",
    "end-of-life",
    "undetermined",
    "not-affected",
)
_IMPACTS: Final = ("Low", "Moderate", "Important", "Critical")


def _highest(words: set[str]) -> str | None:
    known = [w for w in words if w in _IMPACTS]
    return max(known, key=_IMPACTS.index) if known else None
