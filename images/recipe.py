"""Fixture image recipes (``images/recipes/<name>.toml``): pinned package lists per image.

A recipe names a Debian base (suite, variant, architecture), then layers of three kinds in a
fixed order: ``debian`` layers (more Debian packages), then ``python`` layers (wheels pinned
by name, version and SHA-256) and ``node`` layers (npm packages pinned by version and
integrity, plus files from ``images/``). The recipe, the files it names, the builder's own
source and the apt sources it resolves against make up the recipe key that decides whether
a cached image is still current.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bundles import canonical
from bundles.errors import StellaError

IMAGES_DIR: Final = Path(__file__).resolve().parent
RECIPES_DIR: Final = IMAGES_DIR / "recipes"
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_BUILDER_SOURCES: Final = ("build.py", "layers.py", "recipe.py")


class FixtureError(StellaError):
    """A fixture image cannot be built: bad recipe, failed tool, or unusable cache."""


class RecipeError(FixtureError):
    """A recipe file is malformed; the message names the file and the field."""


class LayerKind(StrEnum):
    DEBIAN = "debian"
    PYTHON = "python"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class BaseSpec:
    suite: str
    variant: str
    architecture: str
    exclude: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PythonPackage:
    name: str
    version: str
    sha256: str
    sdist: bool = False


@dataclass(frozen=True, slots=True)
class NodePackage:
    name: str
    version: str
    integrity: str


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A file copied from ``images/`` (``source``) to ``path`` in the image."""

    path: str
    source: Path
    mode: int


@dataclass(frozen=True, slots=True)
class LayerSpec:
    kind: LayerKind
    comment: str
    include: tuple[str, ...] = ()  # debian
    target: str = ""  # python: where wheels' purelib/platlib go
    scripts: str = ""  # python: where console scripts go
    interpreter: str = ""  # python: the scripts' #! line
    python_version: str = ""
    platform: str = ""
    build_requires: tuple[str, ...] = ()
    python_packages: tuple[PythonPackage, ...] = ()
    prefix: str = ""  # node: the directory holding package.json and node_modules
    node_packages: tuple[NodePackage, ...] = ()
    files: tuple[FileSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageConfig:
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    working_dir: str | None
    env: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    description: str
    source_date_epoch: int
    base: BaseSpec
    layers: tuple[LayerSpec, ...]
    config: ImageConfig
    path: Path
    document: dict[str, Any]

    @property
    def created(self) -> str:
        """The image's creation time, RFC 3339 UTC: the recipe's SOURCE_DATE_EPOCH."""
        return datetime.fromtimestamp(self.source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def lock_path(self) -> Path:
        """The committed lock file beside the recipe: the versions last built and reviewed."""
        return self.path.with_suffix(".lock.json")

    def debian_includes(self, upto: int) -> tuple[str, ...]:
        """Every Debian package named by layers ``0..upto`` (inclusive), in recipe order."""
        names: list[str] = []
        for layer in self.layers[: upto + 1]:
            names.extend(n for n in layer.include if n not in names)
        return tuple(names)


class _Table:
    """Typed access to one TOML table, with errors that name the file and the field."""

    def __init__(self, data: Any, where: str, path: Path) -> None:
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: {where} must be a table")
        self.data, self.where, self.path = data, where, path
        self.used: set[str] = set()

    def _field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type, default: Any = ..., *, many: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise RecipeError(f"{self.path}: field {self._field(key)!r} is missing")
            return default
        value = self.data[key]
        items = value if many and isinstance(value, list) else [value]
        if (many and not isinstance(value, list)) or not all(
            isinstance(v, kind) and not (kind is int and isinstance(v, bool)) for v in items
        ):
            expected = f"a list of {kind.__name__}" if many else kind.__name__
            raise RecipeError(
                f"{self.path}: field {self._field(key)!r} must be {expected}, got {value!r}"
            )
        return tuple(value) if many else value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise RecipeError(
                f"{self.path}: unknown field {self._field(unknown[0])!r}",
                hint="check the spelling against images/recipes/app.toml",
            )


def _rel_path(value: str, field: str, path: Path) -> str:
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or value.startswith("/"):
        raise RecipeError(
            f"{path}: field {field!r} is {value!r}; expected a relative path inside the image",
            hint="write it without a leading '/', e.g. usr/local/lib/python3.11/dist-packages",
        )
    return "/".join(parts)


def _python_package(data: Any, where: str, path: Path) -> PythonPackage:
    t = _Table(data, where, path)
    pkg = PythonPackage(
        t.get("name", str), t.get("version", str), t.get("sha256", str), t.get("sdist", bool, False)
    )
    t.done()
    if not _SHA256.fullmatch(pkg.sha256):
        raise RecipeError(f"{path}: {where}.sha256 is not 64 lowercase hex digits: {pkg.sha256!r}")
    return pkg


def _node_package(data: Any, where: str, path: Path) -> NodePackage:
    t = _Table(data, where, path)
    pkg = NodePackage(t.get("name", str), t.get("version", str), t.get("integrity", str))
    t.done()
    if not pkg.integrity.startswith("sha512-"):
        raise RecipeError(f"{path}: {where}.integrity must be an sha512-… SRI string")
    return pkg


def _file(data: Any, where: str, path: Path) -> FileSpec:
    t = _Table(data, where, path)
    target = _rel_path(t.get("path", str), f"{where}.path", path)
    source = IMAGES_DIR / _rel_path(t.get("source", str), f"{where}.source", path)
    mode = t.get("mode", int, 0o644)
    t.done()
    if not source.is_file():
        raise RecipeError(f"{path}: {where}.source {source} is not a file in images/")
    return FileSpec(target, source, mode)


def _layer(data: Any, where: str, path: Path) -> LayerSpec:
    t = _Table(data, where, path)
    kind_text = t.get("kind", str)
    try:
        kind = LayerKind(kind_text)
    except ValueError:
        raise RecipeError(
            f"{path}: {where}.kind is {kind_text!r}",
            hint=f"use one of {', '.join(k.value for k in LayerKind)}",
        ) from None
    comment = t.get("comment", str)
    files = tuple(
        _file(f, f"{where}.files[{i}]", path)
        for i, f in enumerate(t.get("files", dict, (), many=True))
    )
    match kind:
        case LayerKind.DEBIAN:
            layer = LayerSpec(kind, comment, include=t.get("include", str, many=True))
            if files:
                raise RecipeError(f"{path}: {where}: a debian layer cannot carry files")
        case LayerKind.PYTHON:
            packages = t.get("packages", dict, many=True)
            layer = LayerSpec(
                kind,
                comment,
                target=_rel_path(t.get("target", str), f"{where}.target", path),
                scripts=_rel_path(t.get("scripts", str), f"{where}.scripts", path),
                interpreter=t.get("interpreter", str),
                python_version=t.get("python_version", str),
                platform=t.get("platform", str),
                build_requires=t.get("build_requires", str, (), many=True),
                python_packages=tuple(
                    _python_package(p, f"{where}.packages[{i}]", path)
                    for i, p in enumerate(packages)
                ),
                files=files,
            )
        case LayerKind.NODE:
            packages = t.get("packages", dict, many=True)
            layer = LayerSpec(
                kind,
                comment,
                prefix=_rel_path(t.get("prefix", str), f"{where}.prefix", path),
                node_packages=tuple(
                    _node_package(p, f"{where}.packages[{i}]", path) for i, p in enumerate(packages)
                ),
                files=files,
            )
    t.done()
    return layer


def load_recipe(path: Path) -> Recipe:
    """Parse and check one recipe file."""
    try:
        raw = path.read_bytes()
        document = tomllib.loads(raw.decode("utf-8"))
    except OSError as e:
        raise RecipeError(f"cannot read the recipe {path}: {e.strerror}") from e
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RecipeError(f"{path} is not valid TOML: {e}") from e
    top = _Table(document, "", path)
    name = top.get("name", str)
    if not _NAME.fullmatch(name) or path.stem != name:
        raise RecipeError(
            f"{path}: name {name!r} must be lowercase [a-z0-9._-] and match the file name"
        )
    description = top.get("description", str)
    epoch = top.get("source_date_epoch", int)
    b = _Table(top.get("base", dict), "base", path)
    base = BaseSpec(
        b.get("suite", str),
        b.get("variant", str),
        b.get("architecture", str),
        tuple(_rel_path(e, "base.exclude", path) for e in b.get("exclude", str, (), many=True)),
    )
    b.done()
    layers = tuple(
        _layer(item, f"layer[{i}]", path)
        for i, item in enumerate(top.get("layer", dict, (), many=True))
    )
    kinds = [layer.kind for layer in layers]
    first_other = next((i for i, k in enumerate(kinds) if k is not LayerKind.DEBIAN), len(kinds))
    if LayerKind.DEBIAN in kinds[first_other:]:
        raise RecipeError(
            f"{path}: a debian layer follows a python or node layer",
            hint="put every debian layer first: they are computed from whole Debian root trees",
        )
    c = _Table(top.get("config", dict), "config", path)
    config = ImageConfig(
        c.get("entrypoint", str, None, many=True),
        c.get("cmd", str, None, many=True),
        c.get("working_dir", str, None),
        c.get("env", str, (), many=True),
    )
    c.done()
    top.done()
    return Recipe(name, description, epoch, base, layers, config, path, document)


def recipe_names(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in recipes_dir.glob("*.toml"))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recipe_key(recipe: Recipe, apt_sources: Path | None) -> str:
    """The SHA-256 that a cached image must carry to count as built from this recipe: over
    the recipe, the files it copies in, the builder's source and the apt sources used."""
    files = {
        str(f.source.relative_to(IMAGES_DIR)): _sha256_file(f.source)
        for layer in recipe.layers
        for f in layer.files
    }
    builder = {name: _sha256_file(IMAGES_DIR / name) for name in _BUILDER_SOURCES}
    sources = _sha256_file(apt_sources) if apt_sources is not None else None
    key = {"recipe": recipe.document, "files": files, "builder": builder, "apt": sources}
    return canonical.digest(key).hex
