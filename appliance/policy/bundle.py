"""A policy bundle: a directory of ``.rego`` files plus an optional ``data.json``.

Its identity is the digest the mirror records for a policy source: the canonical JSON digest
of the sorted list of ``{"path", "sha256"}`` of its files (bundles/… ``mirror/sources/policy``
computes the same), so a bundle delivered in a knowledge snapshot and the same files given with
``--policy DIR`` have one digest. ``data.json`` may name the bundle under ``stella.bundle``:
``{"id": ..., "version": ..., "mode": "enforce" | "audit"}``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bundles import canonical, limits
from bundles.bounded import read_open_file
from bundles.canonical import kind_of
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, StellaError
from bundles.limits import Unit

DEFAULT_DIR: Final = Path(__file__).parent / "default"
FILE_BYTES: Final = limits.cap(
    "policy.file_bytes", 4 << 20, Unit.BYTES, "one .rego file of a policy bundle"
)
DATA_BYTES: Final = limits.cap(
    "policy.data_bytes", 16 << 20, Unit.BYTES, "one data.json file of a policy bundle"
)
TOTAL_BYTES: Final = limits.cap(
    "policy.total_bytes", 32 << 20, Unit.BYTES, "the files of a policy bundle together"
)
FILE_COUNT: Final = limits.cap(
    "policy.files", 1_000, Unit.COUNT, "the .rego and data.json files of a policy bundle"
)
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
            mode = PolicyMode(mode_text if isinstance(mode_text, str) else "")
        except ValueError:
            shown = repr(mode_text[:64]) if isinstance(mode_text, str) else kind_of(mode_text)
            raise PolicyLoadError(
                f"{source}: stella.bundle.mode is {shown}",
                hint="use 'enforce' or 'audit'",
            ) from None
        for name in ("id", "version"):
            value = meta.get(name)
            if (value is not None and not isinstance(value, str | int)) or isinstance(value, bool):
                raise PolicyLoadError(
                    f"{source}: stella.bundle.{name} must be a string, not {kind_of(value)}"
                )
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
        """Every ``.rego`` file and ``data.json`` under ``path`` (relative paths, ``/``), each
        a regular file inside the directory, read within the ``policy.*`` caps."""
        if not path.is_dir():
            raise PolicyLoadError(
                f"policy directory {path} does not exist",
                hint="pass a directory of .rego files (and data.json)",
            )
        root = path.resolve()
        files = []
        total = 0
        for item in _policy_files(path, root):
            rel = item.relative_to(path).as_posix()
            raw = _read_policy_file(item, root)
            total += len(raw)
            limits.check(TOTAL_BYTES, total, str(path))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PolicyLoadError(
                    f"{item}: not UTF-8 text ({e.reason} at byte {e.start})",
                    hint="policy files are UTF-8 text",
                ) from e
            files.append(PolicyFile(rel, text, Digest.of_bytes(raw).hex))
            limits.check(FILE_COUNT, len(files), str(path))
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


def _policy_files(path: Path, root: Path) -> Iterator[Path]:
    """The policy files under ``path`` in a stable order, without following links to
    directories; a link that leads out of the directory is refused."""
    for here, dirs, names in os.walk(path, followlinks=False):
        base = Path(here)
        for name in sorted(dirs):
            link = base / name
            if link.is_symlink():
                _inside(link, root)  # a link to a directory inside is walked at its target
        dirs.sort()
        for name in sorted(names):
            if not (name.endswith(".rego") or name == DATA_FILE):
                continue
            if name.endswith("_test.rego"):
                continue  # OPA's convention for policy unit tests: not part of the decision
            yield base / name


def _inside(item: Path, root: Path) -> Path:
    """Where ``item`` leads, refused when that is outside the policy directory ``root``."""
    target = item.resolve()
    if target != root and root not in target.parents:
        raise PolicyLoadError(
            f"{item}: is a symbolic link to {target}, outside the policy directory {root}",
            hint="copy the file into the policy directory instead of linking it",
        )
    return target


def _read_policy_file(item: Path, root: Path) -> bytes:
    """A regular file's bytes within its cap, checked by the open file's own size."""
    cap = DATA_BYTES if item.name == DATA_FILE else FILE_BYTES
    if item.is_symlink():
        _inside(item, root)
    try:
        fd = os.open(item, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise PolicyLoadError(f"{item}: cannot read: {e.strerror}") from e
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PolicyLoadError(
                f"{item}: is not a regular file", hint="a policy bundle holds only files"
            )
        return read_open_file(fh, cap, str(item))


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
