"""``mirror.toml``: which sources the mirror fetches, read with :mod:`tomllib`.

Every bad value is reported as one line naming the file, the source and the field, because the
operator fixing it has only the config file in front of them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bundles.snapshot import SourceKind
from mirror.errors import MirrorConfigError

DEFAULT_MAX_SIZE: Final = 2 << 30  # 2 GiB per source unless the config says otherwise
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = ["MirrorConfig", "SourceConfig", "SourceKind", "load_config", "parse_config"]


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[[source]]`` table. Exactly one of ``url`` and ``path`` is set."""

    name: str
    kind: SourceKind
    url: str | None = None
    path: Path | None = None
    sha256: str | None = None
    checksum_url: str | None = None
    max_size: int = DEFAULT_MAX_SIZE
    timeout: float = 60.0
    retries: int = 3

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    path: Path
    sources: tuple[SourceConfig, ...]

    def select(self, names: tuple[str, ...]) -> tuple[SourceConfig, ...]:
        """The named sources, in config order; an unknown name is a config error."""
        known = {s.name for s in self.sources}
        for n in names:
            if n not in known:
                raise MirrorConfigError(
                    f"{self.path}: no source named {n!r}",
                    hint=f"configured sources: {', '.join(sorted(known)) or 'none'}",
                )
        return tuple(s for s in self.sources if not names or s.name in names)


_FIELDS: Final = frozenset(
    {"name", "kind", "url", "path", "sha256", "checksum_url", "max_size", "timeout", "retries"}
)


def load_config(path: Path) -> MirrorConfig:
    """Read and validate ``mirror.toml``; relative ``path`` values resolve against its folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MirrorConfigError(
            f"{path}: config file not found", hint="pass --config FILE (see examples/mirror.toml)"
        ) from e
    except OSError as e:
        raise MirrorConfigError(f"{path}: cannot read: {e.strerror}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MirrorConfigError(f"{path}: not valid TOML: {e}") from e
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> MirrorConfig:
    unknown_top = sorted(set(data) - {"source"})
    if unknown_top:
        raise MirrorConfigError(
            f"{path}: unknown top-level key {unknown_top[0]!r}", hint="only [[source]] tables"
        )
    raw = data.get("source", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise MirrorConfigError(f"{path}: 'source' must be an array of tables ([[source]])")
    base = path.parent
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        src = _parse_source(table, index, path, base)
        if src.name in seen:
            raise MirrorConfigError(
                f"{path}: source {src.name!r}: field 'name': duplicate source name",
                hint="give every [[source]] a unique name",
            )
        seen.add(src.name)
        sources.append(src)
    return MirrorConfig(path=path, sources=tuple(sources))


def _parse_source(table: dict[str, Any], index: int, path: Path, base: Path) -> SourceConfig:
    label = f"source #{index}"
    name = table.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        label = f"source {name!r}"

    def bad(field: str, problem: str, hint: str | None = None) -> MirrorConfigError:
        return MirrorConfigError(f"{path}: {label}: field {field!r}: {problem}", hint=hint)

    extra = sorted(set(table) - _FIELDS)
    if extra:
        raise bad(extra[0], "unknown field", f"known fields: {', '.join(sorted(_FIELDS))}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad("name", f"missing or invalid value {name!r}", "use lowercase a-z, 0-9, . _ -")
    kind_raw = table.get("kind")
    try:
        kind = SourceKind(str(kind_raw))
    except ValueError:
        raise bad(
            "kind",
            f"unknown kind {kind_raw!r}",
            f"use one of: {', '.join(k.value for k in SourceKind)}",
        ) from None
    url, rel = table.get("url"), table.get("path")
    if url is not None and rel is not None:
        raise bad("url", "both 'url' and 'path' are set", "keep exactly one of them")
    if url is None and rel is None:
        raise bad("url", "neither 'url' nor 'path' is set", "give an HTTP(S) url or a local path")
    local: Path | None = None
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad("url", f"not an http(s) URL: {url!r}")
    else:
        if not isinstance(rel, str) or not rel:
            raise bad("path", f"not a path: {rel!r}")
        local = (base / rel).absolute()
        if not local.exists():
            raise bad("path", f"{local} does not exist", "fix the path (relative to the config)")
    sha = table.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _HEX64.fullmatch(sha.lower())):
        raise bad("sha256", f"not a sha256 hex digest: {sha!r}")
    checksum_url = table.get("checksum_url")
    if checksum_url is not None and (
        not isinstance(checksum_url, str) or not checksum_url.startswith(("http://", "https://"))
    ):
        raise bad("checksum_url", f"not an http(s) URL: {checksum_url!r}")
    max_size = table.get("max_size", DEFAULT_MAX_SIZE)
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
        raise bad("max_size", f"must be a positive number of bytes, got {max_size!r}")
    timeout = table.get("timeout", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise bad("timeout", f"must be a positive number of seconds, got {timeout!r}")
    retries = table.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise bad("retries", f"must be an integer from 0 to 10, got {retries!r}")
    return SourceConfig(
        name=name,
        kind=kind,
        url=url,
        path=local,
        sha256=sha.lower() if sha else None,
        checksum_url=checksum_url,
        max_size=max_size,
        timeout=float(timeout),
        retries=retries,
    )
