"""The child process of a bounded scan job (``python -m appliance.scanner.jobchild``).

It reads the request on standard input, lowers its own rlimits (memory, CPU time, file size,
open files) before it imports the scanner, turns ``SIGXCPU`` into :class:`CpuBoundHit`, and
scans. It writes nothing of the home: layer records it walks go back to the parent with the
result, one JSON document on standard output. A bound passed is answered as
``{"status": "limit", "bound": …}``; when even that cannot be written for lack of memory, the
exit status is :data:`~appliance.scanner.jobs.EXIT_MEMORY` (the parent knows it).

Only the standard library and two small modules (what names a bound's failure, the root error)
are imported before the limits are set: everything the child does with the image happens under
its bounds, and naming a bound needs no file opened once the open-files bound is reached.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final

from appliance.scanner.exhaustion import CpuBoundHit
from bundles.errors import StellaError

REQUEST_LIMIT: Final = 1 << 20
EXIT_MEMORY: Final = 75  # appliance.scanner.jobs.EXIT_MEMORY (not imported: see the docstring)
_OUT_OF_MEMORY: Final = b'{"status":"limit","bound":"memory"}'


def apply_rlimits(wanted: dict[str, int]) -> None:
    """Lower each soft limit to the bound (never above the hard limit this process was
    given); the CPU limit keeps a hard limit a few seconds above, so ``SIGXCPU`` comes first
    and ``SIGKILL`` only if the process ignores it."""
    for name, value in wanted.items():
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
        new_hard = hard
        if name == "RLIMIT_CPU":
            grace = soft + 5
            new_hard = grace if hard == resource.RLIM_INFINITY else min(grace, hard)
        resource.setrlimit(which, (soft, new_hard))


def _on_xcpu(signum: int, frame: Any) -> None:
    # once: the kernel repeats SIGXCPU every second, which must not interrupt the answer
    # (the hard limit, a few seconds on, still kills a process that goes on)
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    raise CpuBoundHit("CPU time")


def _bound_of(error: BaseException) -> str | None:
    """Which bound ``error`` (or an error it was raised from) is the sign of."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CpuBoundHit):
            return "cpu"
        if isinstance(current, MemoryError):
            return "memory"
        if isinstance(current, OSError):
            if current.errno == errno.EFBIG:
                return "file-size"
            if current.errno in (errno.EMFILE, errno.ENFILE):
                return "open-files"
            if current.errno == errno.ENOMEM:
                return "memory"
        current = current.__cause__ or current.__context__
    return None


def scan(request: dict[str, Any]) -> dict[str, Any]:
    """Scan as the request says; the result in the layer cache's form (what the parent
    rebuilds the :class:`~appliance.scanner.result.ScanResult` from)."""
    from pathlib import Path

    from appliance.home import Home
    from appliance.scanner.analyzers.table import DEFAULT, AnalyzerTable
    from appliance.scanner.cache import LayerCache
    from appliance.scanner.image import ImageRef, open_image
    from appliance.scanner.layers import LayerRecord
    from appliance.scanner.service import (
        build_result,
        collection_paused,
        layer_records,
        result_to_cache,
    )
    from appliance.scanner.walk import walk_rootfs
    from bundles.digest import Digest

    class Deferred(LayerCache):
        """The home's cache, read as usual; what would be written is kept for the parent."""

        __slots__ = ("parsed", "walked")

        def __init__(self, cache: LayerCache) -> None:
            super().__init__(cache.db)
            self.walked: dict[str, dict[str, Any]] = {}
            self.parsed: list[list[Any]] = []

        def put(self, layer: Digest, key: str, record: LayerRecord) -> None:
            self.walked[str(layer)] = record.to_dict()

        def put_facts(
            self, key: str, entries: Iterable[tuple[Digest, str, str, Mapping[str, Any]]]
        ) -> None:
            # the facts themselves travel in the result's program, which holds every file read
            self.parsed += [[str(layer), path, source] for layer, path, source, _ in entries]

    home = Home(Path(request["home"])) if request.get("home") else None
    registry = AnalyzerTable(DEFAULT.get(n) for n in request["analyzers"])
    image = open_image(
        ImageRef.parse(request["ref"]),
        store=home.oci if home is not None else None,
        platform=request.get("platform"),
    )
    opened = (
        str(image.manifest_digest) if image.manifest_digest else None,
        str(image.config_digest) if image.config_digest else None,
    )
    if opened != (request.get("manifest"), request.get("config")):
        raise ImageChangedError(
            f"{request['ref']} names another image than when the scan began "
            f"(manifest {opened[0]}, expected {request.get('manifest')})",
            hint="scan it again (a tag was moved or the layout changed meanwhile)",
        )
    with collection_paused():
        if image.rootfs is not None:
            result = build_result(image, [walk_rootfs(image.rootfs, registry)], registry)
            return {"status": "ok", "result": result_to_cache(result), "hits": [], "layers": {}}
        cache = Deferred(LayerCache.open(Path(request["cache"]))) if request.get("cache") else None
        try:
            records, hits = layer_records(image, registry, cache)
            result = build_result(image, records, registry, hits, cache)
            return {
                "status": "ok",
                "result": result_to_cache(result),
                "hits": [str(h) for h in hits],
                "layers": cache.walked if cache is not None else {},
                "facts": cache.parsed if cache is not None else [],
            }
        finally:
            if cache is not None:
                cache.close()


class ImageChangedError(StellaError):
    """The reference resolved to another image in the child than in the parent."""


class LimitsNotSetError(StellaError):
    """The child could not set its own limits: it does not scan unbounded."""


def main() -> int:
    request = json.loads(sys.stdin.buffer.read(REQUEST_LIMIT))
    try:
        apply_rlimits(request["rlimits"])
    except (OSError, ValueError) as e:  # a seccomp filter refusing setrlimit, say
        sys.stdout.buffer.write(
            _failure(
                LimitsNotSetError(
                    f"the scan's process cannot set its limits: {e}",
                    hint="allow setrlimit/prlimit64 to stella (a unit's SystemCallFilter=), "
                    "or run the scan where it may",
                )
            )
        )
        return 0
    signal.signal(signal.SIGXCPU, _on_xcpu)
    try:
        confine(request.get("boundary"))
        data = json.dumps(scan(request), separators=(",", ":")).encode()
    except BaseException as e:  # every ending is reported to the parent, none is lost
        data = _failure(e)
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except MemoryError:
        os._exit(EXIT_MEMORY)
    return 0


def confine(boundary: dict[str, Any] | None) -> None:
    """Put this process behind the parent's tenant boundary (appliance/tenancy.py) before
    the scan opens anything: a tenant's scan reaches only what the tenant may."""
    if boundary is None:
        return
    from pathlib import Path

    from appliance import tenancy

    tenancy.confine(tenancy.Boundary.of(Path(boundary["base"]), boundary["tenant"]))


def _failure(error: BaseException) -> bytes:
    """The answer for a scan that ended with ``error`` (a bound passed, or a refusal the
    parent shows as it is); anything else is re-raised (its traceback goes to the parent)."""
    try:
        bound = _bound_of(error)
        if bound is not None:
            return json.dumps({"status": "limit", "bound": bound}).encode()
        if not isinstance(error, StellaError):
            raise error
        doc = {"status": "error", "message": error.message, "hint": error.hint}
        return json.dumps({**doc, "exitCode": error.exit_code}).encode()
    except MemoryError:
        return _OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main())
