"""Build the fixture images from their recipes into OCI image layouts, without a container
engine: Debian root trees from mmdebstrap, pinned wheels installed by ``installer``, pinned npm
packages from ``npm install``, each turned into a deterministic layer by ``images.layers`` and
stored with the project's own ``bundles.oci.OCILayout``. The appliance's own image
(``appliance``) is built the same way, plus the project itself from a wheel built from this
repository (:data:`PROJECT_IMAGES`); ``all`` means the fixture images only.

Usage: ``.venv/bin/python images/build.py [minbase|app|appliance|all] [--out DIR] [--cache DIR]``.
Each image lands in ``OUT/<name>/``: ``oci/`` (a layout tagged ``<name>:latest``),
``<name>.docker.tar`` (the same image as a docker-archive, written by skopeo), ``lock.json``
(the package versions it was built from) and ``build.json`` (the recipe key and digests). A
build whose recipe key matches the one recorded is skipped. Downloads and Debian root trees
are kept under ``--cache`` so a rebuild needs no network. See docs/images-fixtures.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from debian.deb822 import Deb822
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import OCILayoutError, StellaError
from bundles.oci.descriptor import Descriptor
from bundles.oci.layout import OCILayout
from bundles.oci.mediatypes import (
    ANNOTATION_CREATED,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from images import layers
from images.recipe import (
    IMAGES_DIR,
    RECIPES_DIR,
    FixtureError,
    LayerKind,
    LayerSpec,
    Recipe,
    load_recipe,
    recipe_key,
    recipe_names,
)

ROOT: Final = IMAGES_DIR.parent
DEFAULT_OUT: Final = ROOT / ".cache" / "images"
DEFAULT_CACHE: Final = DEFAULT_OUT / ".work"
MAKE_TARGET: Final = "make images"
APT_SOURCES: Final = (
    Path("/etc/apt/sources.list.d/debian.sources"),
    Path("/etc/apt/sources.list"),
)
_ANNOTATION_TITLE: Final = "org.opencontainers.image.title"
_ANNOTATION_DESCRIPTION: Final = "org.opencontainers.image.description"
_TAIL: Final = 2000  # characters of a failed tool's output quoted in the error


class BuildStepError(FixtureError):
    """A tool the build drives (mmdebstrap, pip, npm, skopeo) failed or gave wrong output."""


class FixtureMissingError(FixtureError):
    """A fixture image (or what an offline rebuild needs) is not in the cache."""


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """A fixture image on disk: ``ref`` is what skopeo and ``stella images load`` take."""

    name: str
    out_dir: Path
    manifest: Digest
    recipe_key: str
    cached: bool
    seconds: float
    drift: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return f"{self.name}:latest"

    @property
    def layout(self) -> Path:
        return self.out_dir / "oci"

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    @property
    def docker_archive(self) -> Path:
        return self.out_dir / f"{self.name}.docker.tar"


def default_apt_sources() -> Path | None:
    """The machine's own apt sources (mmdebstrap resolves against them), if any."""
    return next((p for p in APT_SOURCES if p.is_file()), None)


def _run(
    argv: list[str], *, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as e:
        raise BuildStepError(
            f"{what}: cannot run {argv[0]}: {e.strerror}",
            hint="install it: mmdebstrap, skopeo and npm come from Debian ('make sysdeps')",
        ) from e
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-_TAIL:]
        raise BuildStepError(
            f"{what}: {' '.join(argv[:3])} … exited with {done.returncode}: {output}",
            hint="the package archives must be reachable for a first build; see the output",
        )
    return done.stdout


def _env(recipe: Recipe) -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": str(recipe.source_date_epoch), "LC_ALL": "C.UTF-8"}


def _sha256(path: Path) -> str:
    return Digest.of_file(path)[0].hex


# ------------------------------------------------------------------------- Debian root trees


def debian_rootfs(
    recipe: Recipe,
    includes: tuple[str, ...],
    cache: Path,
    apt_sources: Path | None,
    *,
    offline: bool,
) -> Path:
    """An mmdebstrap tar of the recipe's base plus ``includes``, cached by what determines it.

    With SOURCE_DATE_EPOCH set, mmdebstrap clamps every time in its output, so the same
    package versions give a byte-identical tar.
    """
    base = recipe.base
    key = canonical.digest(
        {
            "suite": base.suite,
            "variant": base.variant,
            "architecture": base.architecture,
            "include": sorted(includes),
            "epoch": recipe.source_date_epoch,
            "apt": _sha256(apt_sources) if apt_sources is not None else None,
        }
    ).hex
    out = cache / "rootfs" / f"{key}.tar"
    if out.is_file():
        return out
    if offline:
        raise FixtureMissingError(
            f"the Debian root tree for {recipe.name} ({', '.join(includes) or base.variant}) "
            f"is not in the cache {cache}",
            hint=f"run '{MAKE_TARGET}' (it needs Debian's package archive) first",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial.tar")
    argv = [
        "mmdebstrap",
        "--quiet",
        f"--variant={base.variant}",
        f"--architectures={base.architecture}",
        "--format=tar",
    ]
    if includes:
        argv.append("--include=" + ",".join(includes))
    argv += [base.suite, str(tmp)]
    if apt_sources is not None:
        argv.append(str(apt_sources))
    _run(argv, what=f"building the Debian root tree for {recipe.name}", env=_env(recipe))
    os.replace(tmp, out)
    return out


def dpkg_packages(tree: layers.Tree) -> dict[str, str]:
    """``package[:arch]`` -> version of every installed package in a tree's dpkg database."""
    text = _text_of(tree, "var/lib/dpkg/status")
    installed: dict[str, str] = {}
    for para in Deb822.iter_paragraphs(text.splitlines()):
        if para.get("Status", "").endswith(" installed"):
            arch = para.get("Architecture", "all")
            name = para["Package"] if arch in ("all", "amd64") else f"{para['Package']}:{arch}"
            installed[name] = para["Version"]
    return dict(sorted(installed.items()))


# ------------------------------------------------------------------------- Python packages


def _find_by_hash(directory: Path, sha256: str) -> Path | None:
    if not directory.is_dir():
        return None
    return next((p for p in sorted(directory.iterdir()) if _sha256(p) == sha256), None)


def _pip_download(layer: LayerSpec, sdist: bool, dest: Path, recipe: Recipe) -> None:
    wanted = [p for p in layer.python_packages if p.sdist == sdist]
    missing = [p for p in wanted if _find_by_hash(dest, p.sha256) is None]
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix="pip-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(
            "".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in missing)
        )
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp]
        # Every file is pinned by its hash; a Requires-Python too strict for the image's
        # interpreter (OPA's py3-none engine wheel says >=3.14) must not block the pin.
        argv += ["--ignore-requires-python"]
        if sdist:
            argv += ["--no-binary=:all:"]
        else:
            abi = "cp" + layer.python_version.replace(".", "")
            argv += ["--only-binary=:all:"]
            argv += [f"--platform={p.strip()}" for p in layer.platform.split(",")]
            argv += [f"--python-version={layer.python_version}", "--implementation=cp"]
            argv += [f"--abi={abi}"]
        _run([*argv, "-r", str(req)], what=f"downloading Python packages for {recipe.name}")
        dest.mkdir(parents=True, exist_ok=True)
        for path in Path(tmp).iterdir():
            if path.name != "requirements.txt":
                shutil.move(path, dest / path.name)


def _build_wheel(
    layer: LayerSpec, sdist: Path, cache: Path, recipe: Recipe, *, offline: bool
) -> Path:
    """Build a wheel from an sdist with the layer's pinned build tools; cached by both."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != layer.python_version:
        raise FixtureError(
            f"{recipe.path}: building {sdist.name} needs Python {layer.python_version}, "
            f"the builder runs on {running}",
            hint="run images/build.py with the project's .venv Python",
        )
    key = canonical.digest({"sdist": _sha256(sdist), "build": list(layer.build_requires)}).hex
    out = cache / "built" / key
    if (cached := _cached_wheel(out)) is not None:
        return cached
    if offline:
        raise FixtureMissingError(
            f"no wheel built from {sdist.name} is in the cache {cache / 'built'}",
            hint=f"run '{MAKE_TARGET}' first (building it fetches the pinned build tools)",
        )
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{r}\n" for r in layer.build_requires))
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp]
        env = {**_env(recipe), "PIP_CONSTRAINT": str(constraints)}
        _run([*argv, str(sdist)], what=f"building a wheel from {sdist.name}", env=env)
        return _keep_one_wheel(Path(tmp), out, what=sdist.name)


def _cached_wheel(out: Path) -> Path | None:
    found = sorted(out.glob("*.whl")) if out.is_dir() else []
    return found[0] if found else None


def _keep_one_wheel(built: Path, out: Path, *, what: str) -> Path:
    """Move the one wheel a build left in ``built`` into the cache directory ``out``."""
    wheels = sorted(built.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildStepError(f"building {what} gave {len(wheels)} wheels, expected 1")
    out.mkdir(parents=True, exist_ok=True)
    shutil.move(wheels[0], out / wheels[0].name)
    return out / wheels[0].name


def _destination(layer: LayerSpec, stage: Path) -> SchemeDictionaryDestination:
    scheme = {
        "purelib": str(stage / layer.target),
        "platlib": str(stage / layer.target),
        "scripts": str(stage / layer.scripts),
        "data": str(stage / "usr" / "local"),
        "headers": str(stage / "usr" / "local" / "include"),
    }
    return SchemeDictionaryDestination(scheme, interpreter=layer.interpreter, script_kind="posix")


def python_stage(
    recipe: Recipe, layer: LayerSpec, stage: Path, cache: Path, *, offline: bool
) -> dict[str, Any]:
    """Install the layer's pinned wheels under ``stage`` as pip would (RECORD, INSTALLER,
    console scripts with the image's interpreter, no byte code); returns the lock entries."""
    downloads = cache / "pip" / "downloads"
    if not offline:
        _pip_download(layer, False, downloads, recipe)
        _pip_download(layer, True, downloads, recipe)
    destination = _destination(layer, stage)
    lock: dict[str, Any] = {}
    for pkg in sorted(layer.python_packages, key=lambda p: p.name):
        archive = _find_by_hash(downloads, pkg.sha256)
        if archive is None:
            raise FixtureMissingError(
                f"{pkg.name} {pkg.version} (sha256 {pkg.sha256}) is not in the cache {downloads}",
                hint=f"run '{MAKE_TARGET}' (it downloads the pinned files) first",
            )
        entry: dict[str, Any] = {"version": pkg.version, "file": archive.name}
        wheel = archive
        if pkg.sdist:
            wheel = _build_wheel(layer, archive, cache / "pip", recipe, offline=offline)
            entry["built_wheel"] = {"file": wheel.name, "sha256": _sha256(wheel)}
        entry["sha256"] = pkg.sha256
        try:
            with WheelFile.open(wheel) as source:
                install(source, destination, additional_metadata={"INSTALLER": b"pip\n"})
        except Exception as e:  # installer raises plain exceptions for malformed wheels
            raise BuildStepError(f"cannot install {wheel.name}: {e}") from e
        lock[pkg.name] = entry
    return lock


# ------------------------------------------------------------------------- the project itself

PROJECT_PACKAGES: Final = ("bundles", "mirror", "appliance", "tui")  # pyproject's wheel packages
PROJECT_FILES: Final = ("pyproject.toml", "README.md")


@dataclass(frozen=True, slots=True)
class ProjectImage:
    """What an image of the project itself adds to its recipe (the recipe format has no words
    for it): the project's wheel built from this repository, installed with the recipe's last
    python layer; a non-root user (uid = gid) appended to the base's passwd and group; and the
    user's home, owned by it with mode 0700, which is the appliance home (``STELLA_HOME``)."""

    user: str
    uid: int
    home: str  # relative path inside the image
    make_target: str


PROJECT_IMAGES: Final = {
    "appliance": ProjectImage("stella", 10001, "var/lib/stella", "make appliance-image"),
}


def project_sources(root: Path = ROOT) -> dict[str, Path]:
    """The files the project's wheel is built from (relative path -> file), byte code and
    caches left out: they, and only they, are copied to a clean directory for the build."""
    found = {name: root / name for name in PROJECT_FILES}
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
                found[rel.as_posix()] = path
    return dict(sorted(found.items()))


def project_key(root: Path = ROOT) -> str:
    """SHA-256 over every source file of the project's wheel, by path."""
    return canonical.digest({p: _sha256(f) for p, f in project_sources(root).items()}).hex


def image_key(recipe: Recipe, apt_sources: Path | None) -> str:
    """The recipe key, and for an image of the project also the project's sources."""
    key = recipe_key(recipe, apt_sources)
    if recipe.name not in PROJECT_IMAGES:
        return key
    return canonical.digest({"recipe": key, "project": project_key()}).hex


def project_wheel(recipe: Recipe, cache: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the project's sources, with the build
    backend of the running environment (no download, so an offline rebuild works) and
    SOURCE_DATE_EPOCH set; cached by :func:`project_key`."""
    out = cache / "project" / project_key()
    if (cached := _cached_wheel(out)) is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="project-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        for rel, path in project_sources().items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, src / rel)
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        argv += ["--no-build-isolation", "-w", str(dist), str(src)]
        _run(argv, what=f"building the project's wheel for {recipe.name}", env=_env(recipe))
        return _keep_one_wheel(dist, out, what="the project")


def _text_of(tree: layers.Tree, path: str) -> str:
    entry = tree.get(path)
    if entry is None or entry.content is None:
        return ""
    with open(entry.content.source, "rb") as fh:
        fh.seek(entry.content.offset)
        return fh.read(entry.content.size).decode("utf-8")


def project_stage(
    recipe: Recipe,
    layer: LayerSpec,
    project: ProjectImage,
    lower: layers.Tree,
    stage: Path,
    cache: Path,
) -> dict[str, Any]:
    """Install the project's wheel under ``stage`` like the pinned ones, and stage the
    user's passwd and group lines and home; returns the lock entry."""
    wheel = project_wheel(recipe, cache)
    try:
        with WheelFile.open(wheel) as source:
            install(source, _destination(layer, stage), additional_metadata={"INSTALLER": b"pip\n"})
    except Exception as e:  # installer raises plain exceptions for malformed wheels
        raise BuildStepError(f"cannot install {wheel.name}: {e}") from e
    home = "/" + project.home
    lines = {
        "etc/passwd": f"{project.user}:x:{project.uid}:{project.uid}::{home}:/usr/sbin/nologin\n",
        "etc/group": f"{project.user}:x:{project.uid}:\n",
    }
    for path, line in lines.items():
        (stage / path).parent.mkdir(parents=True, exist_ok=True)
        (stage / path).write_text(_text_of(lower, path) + line, encoding="utf-8")
    (stage / project.home).mkdir(parents=True, exist_ok=True)
    name, version = wheel.name.split("-")[:2]
    return {
        name.replace("_", "-"): {
            "version": version,
            "file": wheel.name,
            "sha256": _sha256(wheel),
            "sources": project_key(),
        }
    }


def _owned_home(
    changes: list[layers.Entry], upper: dict[str, layers.Entry], project: ProjectImage, epoch: int
) -> tuple[list[layers.Entry], dict[str, layers.Entry]]:
    home = replace(upper[project.home], uid=project.uid, gid=project.uid, mode=0o700, mtime=epoch)
    upper = {**upper, project.home: home}
    return [home if e.path == project.home else e for e in changes], upper


# ------------------------------------------------------------------------- npm packages


def node_stage(
    recipe: Recipe, layer: LayerSpec, stage: Path, cache: Path, *, offline: bool
) -> dict[str, Any]:
    """``npm install`` the layer's pinned packages into ``stage/<prefix>`` with a
    package.json and a package-lock.json (no registry addresses in it); returns lock entries."""
    prefix = stage / layer.prefix
    prefix.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": f"stella-fixture-{recipe.name}",
        "version": "1.0.0",
        "private": True,
        "description": recipe.description,
        "dependencies": {p.name: p.version for p in layer.node_packages},
    }
    (prefix / "package.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    argv = ["npm", "install", "--prefix", str(prefix), "--cache", str(cache / "npm")]
    argv += ["--no-audit", "--no-fund", "--ignore-scripts", "--omit-lockfile-registry-resolved"]
    argv += ["--loglevel=error", "--update-notifier=false"]
    argv += ["--offline"] if offline else ["--prefer-offline"]
    try:
        _run(argv, what=f"installing npm packages for {recipe.name}", env=_env(recipe), cwd=prefix)
    except BuildStepError as e:
        if offline:
            raise FixtureMissingError(
                f"the npm packages of {recipe.name} are not in the cache: {e.message}",
                hint=f"run '{MAKE_TARGET}' first",
            ) from e
        raise
    lockfile = json.loads((prefix / "package-lock.json").read_text())
    installed = lockfile.get("packages", {})
    lock: dict[str, Any] = {}
    for pkg in layer.node_packages:
        got = installed.get(f"node_modules/{pkg.name}", {})
        if (got.get("version"), got.get("integrity")) != (pkg.version, pkg.integrity):
            raise BuildStepError(
                f"{recipe.path}: npm installed {pkg.name} {got.get('version')} with integrity "
                f"{got.get('integrity')}, the recipe pins {pkg.version} {pkg.integrity}",
                hint="the package's published tarball differs from the pin; check the recipe",
            )
    for path, info in sorted(installed.items()):
        if path.startswith("node_modules/"):
            lock[path.removeprefix("node_modules/")] = {
                "version": info.get("version"),
                "integrity": info.get("integrity"),
            }
    return lock


# ------------------------------------------------------------------------- the image


def _staged_changes(
    current: dict[str, layers.Entry], stage: Path, layer: LayerSpec, epoch: int
) -> tuple[list[layers.Entry], dict[str, layers.Entry]]:
    for spec in layer.files:
        target = stage / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec.source, target)
    staged = layers.read_dir(stage, mtime=epoch)
    modes = {spec.path: spec.mode for spec in layer.files}
    upper = dict(current)
    for path, entry in staged.items():
        old = current.get(path)
        if entry.kind is layers.Kind.DIR and old is not None and old.kind is layers.Kind.DIR:
            continue  # a directory the installer only passed through keeps its metadata
        if path in modes:
            entry = layers.Entry(path, entry.kind, modes[path], mtime=epoch, content=entry.content)
        upper[path] = entry
    return layers.diff_trees(current, upper), upper


def _history(recipe: Recipe, created_by: str, comment: str) -> dict[str, str]:
    return {"created": recipe.created, "created_by": created_by, "comment": comment}


def _config(
    recipe: Recipe,
    diff_ids: list[Digest],
    history: list[dict[str, str]],
    user: str | None = None,
) -> bytes:
    cfg = recipe.config
    run: dict[str, Any] = {"Env": list(cfg.env)}
    if user is not None:
        run["User"] = user
    if cfg.entrypoint is not None:
        run["Entrypoint"] = list(cfg.entrypoint)
    if cfg.cmd is not None:
        run["Cmd"] = list(cfg.cmd)
    if cfg.working_dir is not None:
        run["WorkingDir"] = cfg.working_dir
    run["Labels"] = {_ANNOTATION_TITLE: recipe.name, _ANNOTATION_DESCRIPTION: recipe.description}
    config = {
        "created": recipe.created,
        "architecture": recipe.base.architecture,
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
        "history": history,
    }
    return canonical.dumps(config)


def _store(recipe: Recipe, blobs: list[layers.LayerBlob], config: bytes, dest: Path) -> Descriptor:
    layout = OCILayout.init(dest)
    layer_descriptors = []
    for blob in blobs:
        with open(blob.path, "rb") as fh:
            layer_descriptors.append(
                layout.put_blob(fh, expected=blob.digest, size=blob.size, media_type=OCI_LAYER_GZIP)
            )
    config_descriptor = layout.put_blob(config, media_type=OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor.to_dict(),
        "layers": [d.to_dict() for d in layer_descriptors],
        "annotations": {
            ANNOTATION_CREATED: recipe.created,
            _ANNOTATION_TITLE: recipe.name,
            _ANNOTATION_DESCRIPTION: recipe.description,
        },
    }
    descriptor = layout.put_manifest(canonical.dumps(manifest), OCI_MANIFEST)
    layout.tag(f"{recipe.name}:latest", descriptor)
    return descriptor


def diff_locks(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per package whose version moved between two locks (added, removed, changed)."""
    lines: list[str] = []
    for section in ("debian", "python", "node"):
        before = {k: _version(v) for k, v in old.get(section, {}).items()}
        after = {k: _version(v) for k, v in new.get(section, {}).items()}
        for name in sorted(before.keys() | after.keys()):
            a, b = before.get(name), after.get(name)
            if a != b:
                lines.append(f"{section} {name}: {a or '(absent)'} -> {b or '(absent)'}")
    if old.get("manifest") and old.get("manifest") != new.get("manifest"):
        lines.append(f"manifest: {old.get('manifest')} -> {new.get('manifest')}")
    return lines


def _version(value: Any) -> str:
    return str(value.get("version")) if isinstance(value, dict) else str(value)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cached_image(name: str, out: Path, key: str | None = None) -> BuiltImage | None:
    """The image recorded in ``out/<name>`` if it is complete (and built from ``key``)."""
    out_dir = out / name
    record = _read_json(out_dir / "build.json")
    if not isinstance(record, dict) or (key is not None and record.get("recipe_key") != key):
        return None
    try:
        layout = OCILayout.open(out_dir / "oci")
        manifest = layout.resolve(f"{name}:latest").digest
    except OCILayoutError:
        return None
    if str(manifest) != record.get("manifest") or not (out_dir / f"{name}.docker.tar").is_file():
        return None
    return BuiltImage(name, out_dir, manifest, str(record.get("recipe_key")), True, 0.0)


def require_image(name: str, out: Path = DEFAULT_OUT) -> BuiltImage:
    """The cached fixture image ``name``, or an error that says how to build it. Tests and
    the demo call this; they never build images themselves (that needs the network)."""
    project = PROJECT_IMAGES.get(name)
    target = project.make_target if project is not None else MAKE_TARGET
    if cached_image(name, out) is None:
        raise FixtureMissingError(
            f"the fixture image {name!r} is not built in {out / name}",
            hint=f"run '{target}' first (it builds the image once and caches it)",
        )
    key = image_key(load_recipe(RECIPES_DIR / f"{name}.toml"), default_apt_sources())
    image = cached_image(name, out, key)
    if image is None:
        what = "an older recipe" + (" or older project sources" if project else "")
        raise FixtureMissingError(
            f"the fixture image {name!r} in {out / name} was built from {what}",
            hint=f"run '{target}' to rebuild it",
        )
    return image


def build_image(
    recipe: Recipe,
    *,
    out: Path = DEFAULT_OUT,
    cache: Path = DEFAULT_CACHE,
    apt_sources: Path | None = None,
    force: bool = False,
    offline: bool = False,
    update_lock: bool = False,
) -> BuiltImage:
    """Build one image into ``out/<name>`` unless the recorded recipe key matches.

    ``offline`` uses only what ``cache`` holds (no mmdebstrap, pip or npm download) and
    fails naming the make target when something is missing. ``apt_sources`` defaults to the
    machine's own (:func:`default_apt_sources`).
    """
    apt_sources = apt_sources or default_apt_sources()
    key = image_key(recipe, apt_sources)
    image = None if force else cached_image(recipe.name, out, key)
    if image is None:
        image = _build(recipe, key, out=out, cache=cache, apt_sources=apt_sources, offline=offline)
    lock = _read_json(image.out_dir / "lock.json")
    committed = _read_json(recipe.lock_path)
    if isinstance(lock, dict) and isinstance(committed, dict):
        image = replace(image, drift=tuple(diff_locks(committed, lock)))
    if update_lock and isinstance(lock, dict):
        _write_json(recipe.lock_path, lock)
    return image


def _build(
    recipe: Recipe, key: str, *, out: Path, cache: Path, apt_sources: Path | None, offline: bool
) -> BuiltImage:
    started = time.monotonic()
    epoch = recipe.source_date_epoch
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=out))
    work.chmod(0o755)
    try:
        blobs: list[layers.LayerBlob] = []
        history: list[dict[str, str]] = []
        base = recipe.base
        tar = debian_rootfs(recipe, (), cache, apt_sources, offline=offline)
        current = layers.read_tar(tar, exclude=base.exclude)
        blobs.append(layers.write_layer(current.values(), work / "layer-0.tar.gz", epoch=epoch))
        history.append(
            _history(
                recipe,
                f"mmdebstrap --variant={base.variant} --architectures={base.architecture} "
                f"{base.suite}",
                f"Debian {base.suite} {base.variant} root file system",
            )
        )
        lock: dict[str, Any] = {"image": recipe.name, "python": {}, "node": {}}
        project = PROJECT_IMAGES.get(recipe.name)
        python_layers = [i for i, x in enumerate(recipe.layers, 1) if x.kind is LayerKind.PYTHON]
        project_layer = python_layers[-1] if project is not None and python_layers else None
        for index, layer in enumerate(recipe.layers, start=1):
            layer_file = work / f"layer-{index}.tar.gz"
            if layer.kind is LayerKind.DEBIAN:
                includes = recipe.debian_includes(index - 1)
                tar = debian_rootfs(recipe, includes, cache, apt_sources, offline=offline)
                upper = layers.read_tar(tar, exclude=base.exclude)
                changes = layers.diff_trees(current, upper)
                created_by = f"mmdebstrap --include={','.join(layer.include)}"
            else:
                stage = work / f"stage-{index}"
                stage.mkdir()
                if layer.kind is LayerKind.PYTHON:
                    lock["python"].update(
                        python_stage(recipe, layer, stage, cache, offline=offline)
                    )
                    names = " ".join(f"{p.name}=={p.version}" for p in layer.python_packages)
                    if project is not None and index == project_layer:
                        own = project_stage(recipe, layer, project, current, stage, cache)
                        lock["python"].update(own)
                        names += "".join(
                            f" {n}=={e['version']} (this repository)" for n, e in own.items()
                        )
                    created_by = f"install wheels into /{layer.target}: {names}"
                else:
                    lock["node"].update(node_stage(recipe, layer, stage, cache, offline=offline))
                    names = " ".join(f"{p.name}@{p.version}" for p in layer.node_packages)
                    created_by = f"npm install --prefix /{layer.prefix} {names}"
                changes, upper = _staged_changes(current, stage, layer, epoch)
                if project is not None and index == project_layer:
                    changes, upper = _owned_home(changes, upper, project, epoch)
            blobs.append(layers.write_layer(changes, layer_file, epoch=epoch))
            history.append(_history(recipe, created_by, layer.comment))
            current = upper
        lock["debian"] = dpkg_packages(current)
        user = f"{project.uid}:{project.uid}" if project is not None else None
        config = _config(recipe, [b.diff_id for b in blobs], history, user)
        descriptor = _store(recipe, blobs, config, work / "oci")
        lock["manifest"] = str(descriptor.digest)
        archive = work / f"{recipe.name}.docker.tar"
        _run(
            [
                "skopeo",
                "copy",
                "--quiet",
                f"oci:{work / 'oci'}:{recipe.name}:latest",
                f"docker-archive:{archive}:{recipe.name}:latest",
            ],
            what=f"writing the docker-archive of {recipe.name}",
        )
        for path in work.glob("layer-*.tar.gz"):
            path.unlink()
        for path in work.glob("stage-*"):
            shutil.rmtree(path)
        seconds = round(time.monotonic() - started, 1)
        record = {
            "name": recipe.name,
            "recipe_key": key,
            "manifest": str(descriptor.digest),
            "manifest_size": descriptor.size,
            "layers": [
                {
                    "digest": str(b.digest),
                    "diff_id": str(b.diff_id),
                    "size": b.size,
                    "entries": b.entries,
                    "created_by": h["created_by"],
                }
                for b, h in zip(blobs, history, strict=True)
            ],
            "docker_archive": {"sha256": _sha256(archive), "size": archive.stat().st_size},
            "build_seconds": seconds,
        }
        _write_json(work / "build.json", record)
        _write_json(work / "lock.json", lock)
        final = out / recipe.name
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BuiltImage(recipe.name, final, descriptor.digest, key, False, seconds)


# ------------------------------------------------------------------------- command line


def _parse(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="images/build.py",
        description="Build the fixture images (or the appliance's own) into OCI image layouts.",
    )
    parser.add_argument(
        "image", nargs="?", default="all", help="a recipe name, or all (the fixture images)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where images land")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads, root trees")
    parser.add_argument(
        "--apt-sources", type=Path, default=None, help="apt sources file for mmdebstrap"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--offline", action="store_true", help="use only what --cache holds")
    parser.add_argument(
        "--update-lock", action="store_true", help="write images/recipes/<name>.lock.json"
    )
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> int:
    args = _parse(argv)
    fixtures = [n for n in recipe_names() if n not in PROJECT_IMAGES]
    names = fixtures if args.image == "all" else [args.image]
    try:
        for name in names:
            path = RECIPES_DIR / f"{name}.toml"
            if not path.is_file():
                own = ", ".join(sorted(PROJECT_IMAGES))
                raise FixtureError(
                    f"no recipe {path} (the appliance's own image: {own})",
                    hint=f"choose one of: {', '.join(fixtures)}, all",
                )
            image = build_image(
                load_recipe(path),
                out=args.out.resolve(),
                cache=args.cache.resolve(),
                apt_sources=args.apt_sources,
                force=args.force,
                offline=args.offline,
                update_lock=args.update_lock,
            )
            how = "cached" if image.cached else f"built in {image.seconds} s"
            print(f"{image.name}\t{image.manifest}\t{image.ref}\t({how})")
            for line in image.drift:
                print(f"{image.name}: drift from {path.stem}.lock.json: {line}", file=sys.stderr)
    except StellaError as e:
        print(f"images/build.py: error: {e.diagnostics()}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"images/build.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
