"""``scan_image``: one image in, one :class:`ScanResult` out.

The steps: open the reference (:mod:`appliance.scanner.image`), take each layer's record from
the cache or walk it (layers not cached are walked in parallel processes, largest first),
squash the layers and merge the analyzers' results (:mod:`appliance.scanner.layers`), attach
to every package the layer that introduced it, trace the entrypoint
(:mod:`appliance.scanner.entrytrace`), and write the SBOM (:mod:`appliance.scanner.cyclonedx`).
Everything in a :class:`ScanResult` is a function of the image's bytes and the analyzers'
versions: no clock, no host name, no order that depends on timing.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from appliance.home import Home
from appliance.scanner import cyclonedx
from appliance.scanner.analyzers.table import DEFAULT, IMAGE_KINDS, AnalyzerTable
from appliance.scanner.cache import (
    CACHE_FILE,
    CachedFacts,
    LayerCache,
    analyzers_key,
    open_home_cache,
)
from appliance.scanner.entrytrace import EntryTrace, trace
from appliance.scanner.image import ImageRef, Layer, LayerBlob, OpenedImage, open_image
from appliance.scanner.layers import IMAGE_BYTES, LayerRecord
from appliance.scanner.model import AnalysisResult, Unknown
from appliance.scanner.purl import package_purl
from appliance.scanner.pyreach import PythonProgram
from appliance.scanner.result import Evidence, FoundPackage, ScanResult
from appliance.scanner.squash import origin_layers, package_key, squash
from appliance.scanner.walk import over_cap, walk_blob, walk_rootfs
from appliance.store import record_decision
from appliance.store.audit import AuditAction, AuditLog, AuditRecord, os_actor
from bundles import __version__, limits
from bundles.digest import Digest
from bundles.errors import StellaError

IMAGE_REGISTRY = DEFAULT.select(IMAGE_KINDS)
"""What an image scan runs: installed software, not lockfiles."""


# ---------------------------------------------------------------- layer records


def _walk_in_child(blob: LayerBlob, names: tuple[str, ...]) -> dict[str, Any]:
    registry = AnalyzerTable(DEFAULT.get(n) for n in names)
    return walk_blob(blob, registry).to_dict()


def walk_layers(
    layers: Sequence[Layer], registry: AnalyzerTable, *, jobs: int | None = None
) -> dict[Digest, LayerRecord]:
    """Walk the given layers, in parallel processes when there are several and several CPUs
    (the analyzers of ``registry`` must be in the default table, as the children rebuild it)."""
    unique = {layer.digest: layer for layer in layers}
    workers = min(len(unique), jobs or os.cpu_count() or 1)
    if workers <= 1 or not all(n in DEFAULT.names() for n in registry.names()):
        return {d: walk_blob(layer.blob, registry) for d, layer in unique.items()}
    import multiprocessing  # only a cold scan of several layers needs these
    from concurrent.futures import ProcessPoolExecutor

    ordered = sorted(unique.values(), key=lambda layer: -layer.size)
    context = multiprocessing.get_context("fork")
    # this process walks the largest layer while the workers share the others
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
        futures = {
            layer.digest: pool.submit(_walk_in_child, layer.blob, registry.names())
            for layer in ordered[1:]
        }
        records = {ordered[0].digest: walk_blob(ordered[0].blob, registry)}
        for digest, future in futures.items():
            records[digest] = LayerRecord.from_dict(future.result())
    return records


def layer_records(
    image: OpenedImage,
    registry: AnalyzerTable,
    cache: LayerCache | None,
) -> tuple[list[LayerRecord], tuple[Digest, ...]]:
    """Each layer's record, bottom first; and which layers came from the cache."""
    key = analyzers_key(registry)
    found: dict[Digest, LayerRecord] = {}
    if cache is not None:
        for layer in image.layers:
            record = cache.get(layer.digest, key)
            if record is not None:
                found[layer.digest] = record
    hits = tuple(d for d in dict.fromkeys(layer.digest for layer in image.layers) if d in found)
    missing = [layer for layer in image.layers if layer.digest not in found]
    walked = walk_layers(missing, registry) if missing else {}
    if cache is not None:
        for digest, record in walked.items():
            cache.put(digest, key, record)
    found.update(walked)
    return within_image_cap(image.layers, [found[layer.digest] for layer in image.layers]), hits


def within_image_cap(layers: Sequence[Layer], records: list[LayerRecord]) -> list[LayerRecord]:
    """Bottom first, the layers whose uncompressed bytes together stay within
    ``scan.image_bytes``; every layer from the one that passes it is left out as an unknown
    (each layer alone was already bounded by ``scan.layer_bytes`` while it was read)."""
    total = 0
    out = []
    for layer, record in zip(layers, records, strict=True):
        total += record.size
        if total > IMAGE_BYTES.value():
            error = limits.exceeded(IMAGE_BYTES, "image", found=total)
            record = over_cap(layer.digest, IMAGE_BYTES, error.message.removeprefix("image: "))
        out.append(record)
    return out


# ---------------------------------------------------------------- the scan


def build_result(
    image: OpenedImage,
    records: Sequence[LayerRecord],
    registry: AnalyzerTable,
    cached: tuple[Digest, ...] = (),
    cache: LayerCache | None = None,
) -> ScanResult:
    """The result of an image from its layers' records (bottom first); ``cache`` keeps the
    facts of the Python files the trace parses, each under the layer its text comes from."""
    squashed = squash(records, registry)
    analysis = squashed.analysis
    origin = origin_layers(records) if image.layers else {}
    found: list[FoundPackage] = []
    for package in analysis.packages:
        index = origin.get(package_key(package))
        layer = image.layers[index] if index is not None and image.layers else None
        evidence = tuple(
            Evidence(
                path=location,
                layer_index=layer.index if layer else None,
                layer_digest=layer.digest if layer else None,
                diff_id=layer.diff_id if layer else None,
            )
            for location in package.locations
        )
        found.append(FoundPackage(package, package_purl(package, analysis.os), evidence))
    config = dict(image.config)
    facts = (
        CachedFacts(
            cache, analyzers_key(registry), [x.digest for x in image.layers], squashed.pylayer
        )
        if cache is not None and len(image.layers) == len(records)
        else None
    )
    entry_trace = trace(
        config,
        squashed.tree,
        squashed.scripts,
        squashed.imports,
        [(f.purl, f.package) for f in found],
        squashed.pysource,
        facts,
    )
    if facts is not None:
        facts.save()
    unknowns = tuple(sorted(set(analysis.unknowns) | set(squashed.unknowns)))
    return _result(image, registry, analysis, tuple(found), entry_trace, unknowns, cached)


def _result(
    image: OpenedImage,
    registry: AnalyzerTable,
    analysis: AnalysisResult,
    found: tuple[FoundPackage, ...],
    entry_trace: EntryTrace,
    unknowns: tuple[Unknown, ...],
    cached: tuple[Digest, ...],
    sbom: Mapping[str, Any] | None = None,
) -> ScanResult:
    """The scan's result, with its SBOM: rendered, or ``sbom`` (what :func:`result_to_cache`
    stored) when it was rendered for the same image by the same code."""
    result = ScanResult(
        ref=str(image.ref),
        name=image.name,
        tag=image.tag,
        manifest_digest=image.manifest_digest,
        index_digest=image.index_digest,
        config_digest=image.config_digest,
        config=dict(image.config),
        platform=str(image.platform) if image.platform else None,
        platforms=image.platforms,
        layers=image.layers,
        analysis=analysis,
        packages=found,
        entry_trace=entry_trace,
        unknowns=unknowns,
        analyzers=registry.versions(),
        cached_layers=cached,
    )
    if (
        sbom is not None
        and sbom.get("for") == _sbom_identity(result)
        and isinstance(sbom.get("bytes"), str)
    ):
        return replace(result, sbom=sbom["bytes"].encode())
    return replace(result, sbom=cyclonedx.render(result))


def _sbom_identity(result: ScanResult) -> str:
    """What the SBOM is made of besides what the image cache row holds (the packages, their
    evidence, the OS, the trace, the unknowns): the image's names and digests, its layers,
    and the code that renders it. A stored SBOM is reused only for the same."""
    text = json.dumps(
        {
            "render": cyclonedx.RENDER_VERSION,
            "stella": __version__,
            "ref": result.ref,
            "name": result.name,
            "tag": result.tag,
            "manifest": str(result.manifest_digest),
            "index": str(result.index_digest),
            "config": str(result.config_digest),
            "platform": result.platform,
            "layers": [
                [layer.index, str(layer.digest), str(layer.diff_id)] for layer in result.layers
            ],
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_path(home: Home) -> Path:
    return home.root / CACHE_FILE


def scan_image(
    home: Home | None,
    ref: str,
    *,
    platform: str | None = None,
    cache: bool | Path | LayerCache = True,
    registry: AnalyzerTable = IMAGE_REGISTRY,
    audit: bool = True,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ScanResult:
    """Scan one image (see :class:`~appliance.scanner.image.ImageRef` for ``ref``).

    ``cache``: True uses ``$STELLA_HOME/scan-cache.db`` of ``home``, initialised or not
    (no cache without a home), a path
    names another cache file, a :class:`LayerCache` is used as given, False walks every
    layer. With an initialized home and ``audit``, the scan is recorded in the audit log
    (``now`` gives the record's time; the result itself never depends on it).
    """
    with collection_paused():
        result = _scan(home, ref, platform, cache, registry)
    if audit and home is not None and home.initialized:
        record_scan(home, result, now())
    return result


@contextmanager
def collection_paused() -> Iterator[None]:
    """A scan builds a few hundred thousand small acyclic objects; the cyclic collector
    would walk the growing heap again and again (half the time of a cached scan). It is
    paused for the ``with`` body (a scan, a match) and runs as usual afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _scan(
    home: Home | None,
    ref: str,
    platform: str | None,
    cache: bool | Path | LayerCache,
    registry: AnalyzerTable,
) -> ScanResult:
    image = open_image(
        ImageRef.parse(ref), store=home.oci if home is not None else None, platform=platform
    )
    if image.rootfs is not None:
        record = walk_rootfs(image.rootfs, registry)
        result = build_result(image, [record], registry)
    else:
        opened = open_scan_cache(home, cache)
        try:
            result = _scan_layers(image, registry, opened)
        finally:
            if opened is not None and opened is not cache:
                opened.close()
    return result


def cached_result(
    image: OpenedImage, registry: AnalyzerTable, cache: LayerCache
) -> ScanResult | None:
    """The image's whole result when the cache holds it (same config, layers and analyzers):
    no layer is read."""
    stored = cache.get_image(image_key(image, registry))
    if stored is None:
        return None
    try:
        return result_from_cache(image, registry, stored)
    except (KeyError, TypeError, ValueError, StellaError):
        return None  # a damaged or foreign row is a miss; the next scan replaces it


def open_scan_cache(home: Home | None, cache: bool | Path | LayerCache) -> LayerCache | None:
    """The cache ``cache`` names (see :func:`scan_image`); the caller closes it unless it
    was given as a :class:`LayerCache`."""
    if isinstance(cache, LayerCache):
        return cache
    if isinstance(cache, Path):
        return LayerCache.open(cache)
    if cache and home is not None:
        return open_home_cache(home)
    return None


def _scan_layers(
    image: OpenedImage, registry: AnalyzerTable, cache: LayerCache | None
) -> ScanResult:
    """The same image (config and layers) scanned before with the same analyzers is one
    cache row; otherwise each layer's record comes from the cache or a walk."""
    key = image_key(image, registry)
    if cache is not None:
        hit = cached_result(image, registry, cache)
        if hit is not None:
            return hit
    records, hits = layer_records(image, registry, cache)
    result = build_result(image, records, registry, hits, cache)
    if cache is not None:
        cache.put_image(key, analyzers_key(registry), result_to_cache(result))
    return result


SCAN_VERSION: Final = 4
"""Bumped whenever what a scan derives from the layer records changes (evidence, trace)."""


def image_key(image: OpenedImage, registry: AnalyzerTable) -> str:
    text = json.dumps(
        {
            "scan": SCAN_VERSION,
            "analyzers": analyzers_key(registry),
            "config": str(image.config_digest),
            "layers": [str(layer.digest) for layer in image.layers],
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def result_to_cache(result: ScanResult) -> dict[str, Any]:
    return {
        "analysis": result.analysis.to_dict(),
        "found": [[f.purl, [e.to_dict() for e in f.evidence]] for f in result.packages],
        "trace": result.entry_trace.to_dict(),
        "python": python.to_dict() if (python := result.entry_trace.python) else None,
        "unknowns": [u.to_dict() for u in result.unknowns],
        # the SBOM rendered for this very image: a rescan of it reuses it, as it is
        "sbom": {"for": _sbom_identity(result), "bytes": result.sbom.decode()},
    }


def result_from_cache(
    image: OpenedImage,
    registry: AnalyzerTable,
    stored: dict[str, Any],
    cached: tuple[Digest, ...] | None = None,
) -> ScanResult:
    """The result ``result_to_cache`` stored, for ``image``; ``cached`` names the layers
    that came from the cache (by default all of them: the whole image was a cache row)."""
    analysis = AnalysisResult.from_dict(stored["analysis"])
    found = tuple(
        FoundPackage(package, purl, tuple(Evidence.from_dict(e) for e in evidence))
        for package, (purl, evidence) in zip(analysis.packages, stored["found"], strict=True)
    )
    return _result(
        image,
        registry,
        analysis,
        found,
        replace(
            EntryTrace.from_dict(stored["trace"]),
            python=PythonProgram.from_dict(stored["python"]) if stored.get("python") else None,
        ),
        tuple(Unknown.from_dict(u) for u in stored["unknowns"]),
        tuple(dict.fromkeys(layer.digest for layer in image.layers)) if cached is None else cached,
        stored.get("sbom") if isinstance(stored.get("sbom"), dict) else None,
    )


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """A scan's audit record before it is appended: its subject, inputs and result. A rescan
    deciding images in worker processes hands this back, not the whole scan."""

    subject: str
    inputs: dict[str, Any]
    result: dict[str, Any]

    @classmethod
    def of(cls, result: ScanResult) -> ScanRecord:
        return cls(
            subject=str(result.manifest_digest or result.config_digest or result.ref),
            inputs={
                "image": result.ref,
                "layers": [str(layer.digest) for layer in result.layers],
                "analyzers": dict(sorted(result.analyzers.items())),
                "scanner": __version__,
            },
            result={
                "sbom": str(result.sbom_digest()),
                "packages": len(result.packages),
                "unknowns": len(result.unknowns),
            },
        )


def record_scan(home: Home, result: ScanResult, time: datetime) -> None:
    """The scan's audit record (what ``scan_image`` appends with ``audit``)."""
    record = ScanRecord.of(result)
    record_decision(
        home,
        AuditAction.SCAN,
        record.subject,
        command="scan",
        time=time,
        inputs=record.inputs,
        result=record.result,
    )


def audit_scan(log: AuditLog, scan: ScanResult | ScanRecord, time: datetime) -> AuditRecord:
    """The scan's audit record, appended to ``log`` (inside its caller's transaction: the
    rescan records a scan together with the verdict made from it)."""
    record = scan if isinstance(scan, ScanRecord) else ScanRecord.of(scan)
    return log.append(
        AuditAction.SCAN,
        record.subject,
        actor=os_actor("scan"),
        time=time,
        inputs=record.inputs,
        versions={"stella": __version__},
        result=record.result,
    )
