"""Entry trace: what the image runs when it starts, and which packages that reaches.

From the config's ``Entrypoint``/``Cmd``/``WorkingDir``/``Env``: the executable is looked up
through ``PATH`` and its symbolic links are followed inside the image root; the package that
installed it is named; a shell script's ``exec`` lines are followed; for a Python program the
static import graph is walked from the script (or ``-m`` module) through the interpreter's
search path, and every distribution a reached module belongs to is marked reachable.

Each reachable package carries the chain an RVA can cite: package -> file -> layer ->
entrypoint. The import graph is static (``import`` statements found in the source, wherever
they are, including inside functions and ``try`` blocks): it over-approximates what runs and
never executes anything from the image.
"""

from __future__ import annotations

import enum
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from appliance.scanner.model import Package, Unknown
from appliance.scanner.pyfacts import python_facts
from appliance.scanner.pyreach import (
    PythonProgram,
    Root,
    absolute_name,
    module_map,
    program_files,
)

if TYPE_CHECKING:
    from appliance.scanner.filetree import FileTree

DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_EXEC_DEPTH: Final = 8
MAX_MODULES: Final = 50_000
_SHELLS: Final = frozenset({"sh", "bash", "dash", "ash", "busybox", "zsh", "ksh"})
_PYTHON = re.compile(r"^python(\d(\.\d+)?)?$")
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<from>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^#\n;]+)"
    r"|import[ \t]+(?P<modules>[^#\n;]+))",
    re.MULTILINE,
)
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_EXEC = re.compile(r"^\s*exec\s+(?P<rest>.+)$", re.MULTILINE)
Parser = Callable[[str, str], Mapping[str, Any]]
"""What gives a source file's facts from its path and text (:func:`trace`'s ``parse``)."""


def python_imports(source: str) -> tuple[str, ...]:
    """The modules a Python source names in ``import`` statements, as written: ``a.b``,
    relative ``.x``/``..``, and for ``from M import n`` both ``M`` and ``M.n`` (``n`` may be a
    submodule; resolution keeps only what exists). A fast textual scan, not a parser."""
    found: set[str] = set()
    for match in _IMPORT.finditer(source):
        if match.group("modules"):
            for part in match.group("modules").split(","):
                name = part.strip().split()[0] if part.strip() else ""
                if name and all(_IDENT.match(p) for p in name.split(".")):
                    found.add(name)
            continue
        module = match.group("from") or ""
        if not module or not all(_IDENT.match(p) for p in module.lstrip(".").split(".") if p):
            continue
        found.add(module)
        names = match.group("names").strip().strip("()")
        for part in names.replace("\\\n", " ").split(","):
            words = part.strip().split()
            if words and _IDENT.match(words[0]):
                sep = "" if module.endswith(".") else "."
                found.add(f"{module}{sep}{words[0]}")
    return tuple(sorted(found))


class StepKind(enum.StrEnum):
    ENTRYPOINT = "entrypoint"
    SYMLINK = "symlink"
    EXECUTABLE = "executable"
    INTERPRETER = "interpreter"
    SCRIPT = "script"
    EXEC = "exec"
    PYTHON_MAIN = "python-main"


@dataclass(frozen=True, slots=True)
class Step:
    """One hop from the configured command to what runs: a file, its layer and its owner."""

    kind: StepKind
    path: str
    layer: int | None = None
    owner: str | None = None  # the owning package's purl
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "path": self.path,
            "layer": self.layer,
            "owner": self.owner,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            StepKind(data["kind"]), data["path"], data["layer"], data["owner"], data["detail"]
        )


@dataclass(frozen=True, slots=True)
class Reachable:
    """A package reachable from the entrypoint: the file through which it is reached, that
    file's layer, and the chain of files from the entrypoint to it."""

    purl: str
    file: str
    layer: int | None
    chain: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "purl": self.purl,
            "file": self.file,
            "layer": self.layer,
            "chain": list(self.chain),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reachable:
        return cls(data["purl"], data["file"], data["layer"], tuple(data["chain"]))


@dataclass(frozen=True, slots=True)
class EntryTrace:
    argv: tuple[str, ...] = ()
    working_dir: str = ""
    steps: tuple[Step, ...] = ()
    reachable: tuple[Reachable, ...] = ()
    unknowns: tuple[Unknown, ...] = ()
    python: PythonProgram | None = field(default=None, compare=False, repr=False)
    """The Python programs run and what their files name, for function-level reachability
    (:mod:`appliance.scanner.pyreach`); kept with the scan, not in its inventory document."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "workingDir": self.working_dir,
            "steps": [s.to_dict() for s in self.steps],
            "reachable": [r.to_dict() for r in self.reachable],
            "unknowns": [u.to_dict() for u in self.unknowns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntryTrace:
        return cls(
            argv=tuple(data["argv"]),
            working_dir=data["workingDir"],
            steps=tuple(Step.from_dict(s) for s in data["steps"]),
            reachable=tuple(Reachable.from_dict(r) for r in data["reachable"]),
            unknowns=tuple(Unknown.from_dict(u) for u in data["unknowns"]),
        )

    def reachable_purls(self) -> frozenset[str]:
        return frozenset(r.purl for r in self.reachable)


class Owners:
    """File path -> the purl of the package that installed it (dpkg lists, RECORD, ...)."""

    def __init__(self, packages: Iterable[tuple[str, Package]], tree: FileTree) -> None:
        pairs = list(packages)
        # reversed: when two packages list one path, the first in scan order is its owner
        self._by_path: dict[str, str] = {
            path: purl for purl, package in reversed(pairs) for path in package.installed_files
        }
        # usrmerge and similar: /bin -> usr/bin; a file listed as bin/x lives at usr/bin/x
        self._aliases: list[tuple[str, str]] = []
        for name in sorted(tree.listdir("")):
            located = tree.get(name)
            if located is not None and located.entry.link:
                resolved = tree.resolve(name)
                if resolved is not None and resolved[0] and tree.is_dir(resolved[0]):
                    self._aliases.append((resolved[0] + "/", name + "/"))

    def owner(self, path: str) -> str | None:
        found = self._by_path.get(path)
        if found is not None:
            return found
        for real, alias in self._aliases:
            if path.startswith(real):
                found = self._by_path.get(alias + path[len(real) :])
                if found is not None:
                    return found
        return None


class _Tracer:
    def __init__(
        self,
        tree: FileTree,
        scripts: Mapping[str, str],
        imports: Mapping[str, tuple[str, ...]],
        owners: Owners,
        env: Mapping[str, str],
        working_dir: str,
    ) -> None:
        self.tree = tree
        self.scripts = scripts
        self.imports = imports
        self.owners = owners
        self.env = env
        self.cwd = working_dir.strip("/")
        self.steps: list[Step] = []
        self.unknowns: list[Unknown] = []
        self.reached: dict[str, Reachable] = {}
        self.roots: list[tuple[Root, tuple[str, ...]]] = []  # each with its sys.path
        self._modules: dict[tuple[str, tuple[str, ...]], str | None] = {}

    def layer(self, path: str) -> int | None:
        located = self.tree.get(path)
        return located.layer if located else None

    def step(self, kind: StepKind, path: str, detail: str = "") -> None:
        self.steps.append(Step(kind, path, self.layer(path), self.owners.owner(path), detail))

    def reach(self, path: str, chain: Sequence[str]) -> None:
        purl = self.owners.owner(path)
        if purl is not None and purl not in self.reached:
            self.reached[purl] = Reachable(purl, path, self.layer(path), tuple(chain))

    def find_executable(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        if "/" in name:
            found = self.tree.resolve(name, cwd=self.cwd)
            return found if found and self.tree.is_file(found[0]) else None
        for directory in self.env.get("PATH", DEFAULT_PATH).split(":"):
            if not directory:
                continue
            found = self.tree.resolve(posixpath.join(directory, name), cwd=self.cwd)
            if found and self.tree.is_file(found[0]):
                located = self.tree.get(found[0])
                if located is not None and located.entry.mode & 0o111:
                    return found
        return None

    def run(self, argv: Sequence[str], chain: tuple[str, ...], depth: int) -> None:
        if depth > MAX_EXEC_DEPTH:
            self.unknowns.append(Unknown(argv[0], "exec chain too deep; stopped following it"))
            return
        argv = _skip_env(argv)
        if not argv:
            return
        found = self.find_executable(argv[0])
        if found is None:
            self.unknowns.append(
                Unknown(argv[0], f"executable not found in the image (PATH, cwd /{self.cwd})")
            )
            return
        path, links = found
        for link in links:
            self.step(StepKind.SYMLINK, link, f"-> {self.tree.get(link).entry.link}")  # type: ignore[union-attr]
        self.step(StepKind.EXECUTABLE, path, " ".join(argv))
        chain = (*chain, *links, path)
        for link in links:
            self.reach(link, chain)
        self.reach(path, chain)
        base = posixpath.basename(path)
        script = self.scripts.get(path)
        if script is not None:
            self.follow_script(path, script, argv, chain, depth)
        elif _PYTHON.match(base) or _PYTHON.match(posixpath.basename(argv[0])):
            self.python(path, argv[1:], chain)
        elif base in _SHELLS or posixpath.basename(argv[0]) in _SHELLS:
            self.shell(argv[1:], chain, depth)

    def follow_script(
        self, path: str, script: str, argv: Sequence[str], chain: tuple[str, ...], depth: int
    ) -> None:
        shebang = script.splitlines()[0][2:].strip() if script else ""
        words = shebang.split()
        if words and posixpath.basename(words[0]) == "env" and len(words) > 1:
            words = words[1:]
        if not words:
            return
        self.step(StepKind.INTERPRETER, words[0], f"#!{shebang}")
        interpreter = self.find_executable(words[0])
        if interpreter is not None:
            self.reach(interpreter[0], (*chain, interpreter[0]))
        name = posixpath.basename(words[0])
        if _PYTHON.match(name):
            self.python_file(path, chain)
        elif name in _SHELLS:
            self.step(StepKind.SCRIPT, path)
            for match in _EXEC.finditer(script):
                try:
                    words_ = shlex.split(match.group("rest"), comments=True)
                except ValueError:
                    continue
                words_ = [w for w in words_ if not w.startswith("$") and w != "--"]
                if words_ and not words_[0].startswith("-"):
                    self.step(StepKind.EXEC, path, " ".join(words_))
                    self.run(words_, chain, depth + 1)

    def shell(self, args: Sequence[str], chain: tuple[str, ...], depth: int) -> None:
        if len(args) >= 2 and args[0] == "-c":
            try:
                words = shlex.split(args[1], comments=True)
            except ValueError:
                self.unknowns.append(Unknown("", f"cannot parse shell command {args[1]!r}"))
                return
            if words and words[0] == "exec":
                words = words[1:]
            cut = next((i for i, w in enumerate(words) if w in ("&&", "||", ";", "|")), None)
            self.run(words[:cut], chain, depth + 1)
        elif args and not args[0].startswith("-"):
            found = self.find_executable(args[0]) if "/" in args[0] else None
            if found is not None and found[0] in self.scripts:
                self.follow_script(found[0], self.scripts[found[0]], args, chain, depth)

    # ------------------------------------------------------------ Python

    def python(self, interpreter: str, args: Sequence[str], chain: tuple[str, ...]) -> None:
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "-m" and index + 1 < len(args):
                self.python_module(args[index + 1], chain)
                return
            if arg == "-c":
                return
            if arg.startswith("-"):
                index += 1
                continue
            found = self.tree.resolve(arg, cwd=self.cwd)
            if found is None or not self.tree.is_file(found[0]):
                self.unknowns.append(Unknown(arg, "Python script not found in the image"))
                return
            self.python_file(found[0], chain)
            return

    def search_path(self, script_dir: str | None) -> list[str]:
        dirs: list[str] = []
        if script_dir is not None:
            dirs.append(script_dir)
        for entry in self.env.get("PYTHONPATH", "").split(":"):
            if entry:
                dirs.append(posixpath.normpath(posixpath.join("/" + self.cwd, entry)).lstrip("/"))
        versions = sorted(
            {
                name
                for base in ("usr/lib", "usr/local/lib")
                for name in self.tree.listdir(base)
                if re.match(r"^python3\.\d+$", name)
            }
        )
        for version in versions:
            dirs += [f"usr/lib/{version}", f"usr/lib/{version}/lib-dynload"]
        for version in versions:
            dirs += [
                f"usr/local/lib/{version}/dist-packages",
                f"usr/local/lib/{version}/site-packages",
            ]
        dirs += ["usr/lib/python3/dist-packages"]
        dirs += [f"usr/lib/{v}/site-packages" for v in versions]
        return [d for d in dirs if self.tree.is_dir(d)]

    def python_file(self, path: str, chain: tuple[str, ...]) -> None:
        self.step(StepKind.PYTHON_MAIN, path)
        self.reach(path, (*chain, path))
        script_dir = posixpath.dirname(path)
        self.roots.append(
            (Root(path, "__main__", (*chain, path)), tuple(self.search_path(script_dir)))
        )
        self.walk_imports(posixpath.dirname(path), [(path, "__main__", (*chain, path))])

    def python_module(self, module: str, chain: tuple[str, ...]) -> None:
        sys_path = self.search_path(self.cwd)
        found = self.find_module(module, sys_path)
        if found is None:
            self.unknowns.append(Unknown(module, "module for python -m not found in the image"))
            return
        self.step(StepKind.PYTHON_MAIN, found, f"-m {module}")
        self.roots.append((Root(found, module, (*chain, found)), tuple(sys_path)))
        self.walk_imports(self.cwd, [(found, module, (*chain, found))])

    def find_module(self, name: str, sys_path: Sequence[str]) -> str | None:
        """The file ``import name`` loads (a namespace package is its directory)."""
        key = (name, tuple(sys_path))
        if key in self._modules:
            return self._modules[key]
        parts = name.split(".")
        found: str | None = None
        for directory in sys_path:
            parent = posixpath.join(directory, *parts[:-1]) if len(parts) > 1 else directory
            names = self.tree.listdir(parent)
            if not names:
                continue
            leaf = parts[-1]
            base = posixpath.join(parent, leaf)
            if leaf in names and self.tree.is_file(base + "/__init__.py"):
                found = base + "/__init__.py"
            elif leaf + ".py" in names and self.tree.is_file(base + ".py"):
                found = base + ".py"
            else:
                extension = next(
                    (n for n in names if n.startswith(leaf + ".") and n.endswith(".so")), None
                )
                if extension is not None:
                    found = posixpath.join(parent, extension)
                elif leaf in names and len(parts) == 1 and self.tree.is_dir(base):
                    found = base  # a namespace package
            if found is not None:
                break
        self._modules[key] = found
        return found

    def walk_imports(self, script_dir: str, start: list[tuple[str, str, tuple[str, ...]]]) -> None:
        sys_path = self.search_path(script_dir)
        queue = list(start)
        seen_files = {path for path, _, _ in start}
        seen_modules: set[str] = set()
        while queue and len(seen_files) < MAX_MODULES:
            path, module, chain = queue.pop(0)
            is_package = path.endswith("/__init__.py")
            package = module if is_package else module.rpartition(".")[0]
            for name in self.imports.get(path, ()):
                absolute = absolute_name(name, package)
                if absolute is None or absolute in seen_modules:
                    continue
                seen_modules.add(absolute)
                parts = absolute.split(".")
                for depth in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                    prefix = ".".join(parts[:depth])
                    found = self.find_module(prefix, sys_path)
                    if found is None:
                        break
                    if found in seen_files:
                        continue
                    seen_files.add(found)
                    self.reach(found, (*chain, found))
                    if found.endswith(".py"):
                        queue.append((found, prefix, (*chain, found)))


def _skip_env(argv: Sequence[str]) -> list[str]:
    """``env A=B cmd`` and leading ``A=B`` words run ``cmd``."""
    words = list(argv)
    if words and posixpath.basename(words[0]) == "env":
        words = words[1:]
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]
    return words


def command_of(config: Mapping[str, Any]) -> tuple[tuple[str, ...], str, dict[str, str]]:
    """argv, working directory and environment from an image config."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    entrypoint = inner.get("Entrypoint") or []
    cmd = inner.get("Cmd") or []
    argv = tuple(str(x) for x in [*entrypoint, *cmd])
    env: dict[str, str] = {}
    for item in inner.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return argv, str(inner.get("WorkingDir") or ""), env


def trace(
    config: Mapping[str, Any],
    tree: FileTree,
    scripts: Mapping[str, str],
    imports: Mapping[str, tuple[str, ...]],
    packages: Iterable[tuple[str, Package]],
    pysource: Mapping[str, str | None] | None = None,
    parse: Parser | None = None,
) -> EntryTrace:
    """The entry trace of an image; ``packages`` pairs each package with its purl;
    ``pysource`` (source file -> its text, None when over the cap) makes the trace keep the
    Python program for function-level reachability: the files the imports reach are parsed
    (:func:`~appliance.scanner.pyfacts.python_facts`, or ``parse``, given the file's path and
    text, which may answer from a cache), the others never are."""
    argv, working_dir, env = command_of(config)
    if not argv:
        return EntryTrace(unknowns=(Unknown("", "the image config names no Entrypoint or Cmd"),))
    tracer = _Tracer(tree, scripts, imports, Owners(packages, tree), env, working_dir)
    tracer.steps.append(Step(StepKind.ENTRYPOINT, argv[0], detail=" ".join(argv)))
    tracer.run(argv, (), 0)
    reachable = tuple(sorted(tracer.reached.values(), key=lambda r: r.purl))
    return EntryTrace(
        argv=argv,
        working_dir=working_dir,
        steps=tuple(tracer.steps),
        reachable=reachable,
        unknowns=tuple(sorted(set(tracer.unknowns))),
        python=_program(tracer, imports, pysource, parse) if pysource is not None else None,
    )


def _program(
    tracer: _Tracer,
    imports: Mapping[str, tuple[str, ...]],
    pysource: Mapping[str, str | None],
    parse: Parser | None = None,
) -> PythonProgram | None:
    """The Python programs the trace found, with the modules on the first one's path (a
    second program run from another directory is read with the first one's path)."""
    if not tracer.roots:
        return None
    sys_path = tracer.roots[0][1]
    modules = module_map(program_files(tracer.tree.entries), sys_path)
    files = {*modules.values(), *(root.path for root, _ in tracer.roots)}
    owners = {p: o for p in sorted(files) if (o := tracer.owners.owner(p)) is not None}

    def load(path: str) -> Mapping[str, Any] | None:
        if path not in pysource:
            return None  # the standard library, or a file the walk did not keep
        text = pysource[path]
        if text is None:
            return {"e": f"over the scan.python_facts_bytes cap; not parsed ({path})"}
        return parse(path, text) if parse is not None else python_facts(text)

    return PythonProgram(
        roots=tuple(root for root, _ in tracer.roots),
        modules=modules,
        owners=owners,
        imports=imports,
    ).analysed(load)
