"""A policy bundle: a directory of ``.rego`` files plus an optional ``data.json``.

Its identity is the digest the mirror records for a policy source: the canonical JSON digest
of the sorted list of ``{"path", "sha256"}`` of its files (bundles/… ``mirror/sources/policy``
computes the same), so a bundle delivered in a knowledge snapshot and the same files given with
``--policy DIR`` have one digest. ``data.json`` may name the bundle under ``stella.bundle``:
``{"id": ..., "version": ..., "mode": "enforce" | "audit"}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, StellaError

DEFAULT_DIR: Final = Path(__file__).parent / "default"
FILE_LIMIT: Final = 4 << 20
DATA_FILE: Final = "data.json"


class PolicyLoadError(StellaError):
    """A policy bundle cannot be read, parsed or compiled; nothing was evaluated."""


class PolicyMode(StrEnum):
    """``enforce``: the verdict decides the gate's exit code; ``audit``: the verdict is
    recorded and signed the same way, but the gate exits 0 (for trying a new policy)."""

    ENFORCE = "enforce"
    AUDIT = "audit"


@dataclass(frozen=True, slots=True, order=True)
class PolicyFile:
    path: str
    content: str
    sha256: str


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    files: tuple[PolicyFile, ...]
    source: str
    id: str = ""
    version: str = ""
    mode: PolicyMode = PolicyMode.ENFORCE
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> Digest:
        return canonical.digest([{"path": f.path, "sha256": f.sha256} for f in self.files])

    @property
    def modules(self) -> tuple[PolicyFile, ...]:
        return tuple(f for f in self.files if f.path.endswith(".rego"))

    @classmethod
    def build(cls, files: Iterable[PolicyFile], *, source: str) -> PolicyBundle:
        """A bundle from its files; reads ``data.json`` and the bundle's name from it."""
        ordered = tuple(sorted(files))
        paths = [f.path for f in ordered]
        if len(set(paths)) != len(paths):
            raise PolicyLoadError(f"{source}: a file path occurs twice in the policy bundle")
        if not any(p.endswith(".rego") for p in paths):
            raise PolicyLoadError(
                f"{source}: the policy bundle has no .rego file",
                hint="a bundle is a directory of .rego files plus an optional data.json",
            )
        data: dict[str, Any] = {}
        for f in ordered:
            if f.path.rsplit("/", 1)[-1] != DATA_FILE:
                continue
            try:
                part = canonical.loads(f.content, source=f"{source}/{f.path}")
            except CanonicalJSONError as e:
                raise PolicyLoadError(e.message, hint="data.json must be a JSON object") from e
            if not isinstance(part, dict):
                raise PolicyLoadError(f"{source}/{f.path}: data.json must be a JSON object")
            data = _deep_merge(data, part, f"{source}/{f.path}")
        stella = data.get("stella")
        meta = stella.get("bundle") if isinstance(stella, dict) else None
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise PolicyLoadError(
                f"{source}: data.json stella.bundle must be an object",
                hint='e.g. {"id": "my-policy", "version": "1", "mode": "enforce"}',
            )
        digest = canonical.digest([{"path": f.path, "sha256": f.sha256} for f in ordered])
        mode_text = meta.get("mode", PolicyMode.ENFORCE.value)
        try:
            mode = PolicyMode(mode_text)
        except ValueError:
            raise PolicyLoadError(
                f"{source}: stella.bundle.mode is {mode_text!r}",
                hint="use 'enforce' or 'audit'",
            ) from None
        return cls(
            files=ordered,
            source=source,
            id=str(meta.get("id") or f"policy-{digest.short()}"),
            version=str(meta.get("version") or "0"),
            mode=mode,
            data=data,
        )

    @classmethod
    def from_directory(cls, path: Path) -> PolicyBundle:
        """Every ``.rego`` file and ``data.json`` under ``path`` (relative paths, ``/``)."""
        if not path.is_dir():
            raise PolicyLoadError(
                f"policy directory {path} does not exist",
                hint="pass a directory of .rego files (and data.json)",
            )
        files = []
        for item in sorted(path.rglob("*")):
            if not item.is_file() or not (item.suffix == ".rego" or item.name == DATA_FILE):
                continue
            if item.name.endswith("_test.rego"):
                continue  # OPA's convention for policy unit tests: not part of the decision
            raw = item.read_bytes()
            if len(raw) > FILE_LIMIT:
                raise PolicyLoadError(f"{item}: {len(raw)} bytes exceeds {FILE_LIMIT}")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PolicyLoadError(f"{item}: not UTF-8 text ({e.reason})") from e
            rel = item.relative_to(path).as_posix()
            files.append(PolicyFile(rel, text, Digest.of_bytes(raw).hex))
        return cls.build(files, source=str(path))

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, source: str) -> PolicyBundle:
        """A bundle from a snapshot's policy dataset records
        (``{"id": path, "content": text, "sha256": hex, "size": n}``); each content is
        checked against its recorded digest."""
        files = []
        for r in records:
            path, content, sha = r.get("id"), r.get("content"), r.get("sha256")
            if not isinstance(path, str) or not isinstance(content, str):
                raise PolicyLoadError(f"{source}: a policy record has no id or content")
            if path.endswith("_test.rego"):
                continue
            actual = Digest.of_bytes(content.encode("utf-8")).hex
            if actual != sha:
                raise PolicyLoadError(
                    f"{source}: policy file {path} has digest {actual}, its record says {sha}"
                )
            files.append(PolicyFile(path, content, actual))
        return cls.build(files, source=source)

    @classmethod
    def default(cls) -> PolicyBundle:
        """The policy that ships with the appliance (docs/policy.md)."""
        return cls.from_directory(DEFAULT_DIR)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = _deep_merge(out[key], value, where)
        elif key in out:
            raise PolicyLoadError(f"{where}: data key {key!r} is defined twice in the bundle")
        else:
            out[key] = value
    return out
