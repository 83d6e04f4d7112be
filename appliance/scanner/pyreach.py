"""Python reachability below the package: is a module imported, is a function referenced, on a
static path from the image's entrypoint?

The entry trace (:mod:`appliance.scanner.entrytrace`) gives the Python programs an image runs
(:class:`Root`) and where each module lives on the interpreter's path; the layer walk gives
each source file's facts (:mod:`appliance.scanner.pyfacts`). :class:`PythonProgram` keeps
both; :func:`analyse` joins them into a graph whose nodes are modules (their top level runs
when imported) and definitions (``module:qualname``), reached:

- a module by an ``import`` anywhere in a reached module's file (as the package-level trace);
- a function or class when a reached scope (a module's top level, a reached function's body)
  names it: ``from m import f`` + ``f``, ``m.f``, ``import m as x`` + ``x.f``, re-exports
  followed through the defining module's own imports and star imports;
- every method (and nested class) of a reached class: calls through instances are not
  followed, so a class in use counts as using all its methods; a reached class reaches its
  base classes. A class named only as another class's base is not reached by that.

That is the *static* closure: what it reaches is reached through a chain of named references
it can print. It over-approximates what runs (a reference may sit in a branch never taken).
The *possible* closure adds what the static reading cannot see: a computed import or
``exec`` in a reached scope may load any module (every module's top level is added) and
hand out its module object (then an attribute read from an object the reading cannot name,
``x.run``, may be any top-level definition named ``run``), a
``getattr`` with a computed name on a module may fetch any of its definitions, an extension
module may call any definition of its own package. Something outside the possible closure is
``present-not-reached``; inside it but outside the static one, ``unknown``. A reached file
that does not parse makes every not-reached claim ``unknown``.

Pure: values in, values out; the same program gives the same answer and the same chain.
"""

from __future__ import annotations

import posixpath
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

_IDENT: Final = re.compile(r"^[A-Za-z_]\w*$")
_EXTENSION: Final = re.compile(r"^(?P<name>[A-Za-z_]\w*)\.(?:[\w-]+\.)?(?:so|pyd)$")
_DEPTH: Final = 12  # re-export hops followed before a name is given up
Loader = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Root:
    """A Python program the image runs: its main file, the module name it runs as, and the
    chain of files from the configured command to it."""

    path: str
    module: str
    chain: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "module": self.module, "chain": list(self.chain)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Root:
        return cls(str(data["path"]), str(data["module"]), tuple(data["chain"]))


@dataclass(frozen=True, slots=True)
class Site:
    """A place the static reading cannot follow, in a reached scope."""

    path: str
    line: int
    kind: str
    what: str

    def text(self) -> str:
        return f"/{self.path}:{self.line} ({self.kind} {self.what})"


@dataclass(frozen=True, slots=True)
class Closure:
    """What :class:`Analysis` computed, kept with the scan so that a match (the warm path)
    does not compute it again: each reached node with the node that reached it, which of them
    the static closure holds, the dynamic sites and the files that do not parse."""

    parent: Mapping[str, str | None]
    static: frozenset[str]
    sites: tuple[Site, ...] = ()
    blind: tuple[str, ...] = ()
    escaped: bool = False
    opaque: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            # insertion order is the walk's order, which is deterministic
            "parent": [[node, parent] for node, parent in self.parent.items()],
            "static": sorted(self.static),
            "sites": [[s.path, s.line, s.kind, s.what] for s in self.sites],
            "blind": list(self.blind),
            "escaped": self.escaped,
            "opaque": list(self.opaque),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Closure:
        return cls(
            {str(n): (str(p) if p is not None else None) for n, p in data["parent"]},
            frozenset(data["static"]),
            tuple(Site(str(a), int(b), str(c), str(d)) for a, b, c, d in data["sites"]),
            tuple(data["blind"]),
            bool(data["escaped"]),
            tuple(data["opaque"]),
        )


@dataclass(frozen=True, slots=True)
class PythonProgram:
    """What the function-level analysis reads: the programs run, module name -> file on
    their interpreter's path, file -> owning package (purl), and each source file's import
    list and facts."""

    roots: tuple[Root, ...] = ()
    modules: Mapping[str, str] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    imports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    closure: Closure | None = None  # :func:`analyse`'s result, when already computed

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": [r.to_dict() for r in self.roots],
            "modules": dict(sorted(self.modules.items())),
            "owners": dict(sorted(self.owners.items())),
            "imports": {p: list(v) for p, v in sorted(self.imports.items())},
            "facts": dict(sorted(self.facts.items())),
            "closure": self.closure.to_dict() if self.closure is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PythonProgram:
        closure = data.get("closure")
        return cls(
            tuple(Root.from_dict(r) for r in data["roots"]),
            dict(data["modules"]),
            dict(data["owners"]),
            {p: tuple(v) for p, v in data["imports"].items()},
            dict(data["facts"]),
            Closure.from_dict(closure) if closure else None,
        )

    def analysed(self, load: Loader | None = None) -> PythonProgram:
        """The program with its closure computed (done once, at scan time); ``load`` gives
        the facts of a file the closure reaches (parsing it), and the program keeps the facts
        and import lists of exactly the files read."""
        if self.closure is not None or not self.roots:
            return self
        analysis = Analysis(self, load)
        read = sorted(analysis.loaded)
        return replace(
            self,
            imports={p: self.imports[p] for p in read if p in self.imports},
            facts={p: analysis.loaded[p] for p in read},
            closure=analysis.closure(),
        )


def module_name(relative: str) -> str | None:
    """The module a file below a path directory is imported as (``a/b.py`` -> ``a.b``,
    ``a/__init__.py`` -> ``a``, ``a/_x.cpython-311-x86_64-linux-gnu.so`` -> ``a._x``)."""
    parts = relative.split("/")
    leaf = parts[-1]
    if leaf == "__init__.py":
        parts = parts[:-1]
    elif leaf.endswith(".py"):
        parts[-1] = leaf[:-3]
    else:
        found = _EXTENSION.match(leaf)
        if found is None:
            return None
        parts[-1] = found.group("name")
    if not parts or not all(_IDENT.match(p) for p in parts):
        return None
    return ".".join(parts)


def module_map(files: Iterable[str], sys_path: Sequence[str]) -> dict[str, str]:
    """Module name -> file, for every file below a directory of ``sys_path`` (the first
    directory that has a module wins, as for the interpreter; a package's ``__init__.py``
    wins over a same-named module, as a regular package does)."""
    found: dict[str, tuple[int, int, str]] = {}
    for path in files:
        for rank, directory in enumerate(sys_path):
            prefix = directory + "/" if directory else ""
            if not path.startswith(prefix):
                continue
            name = module_name(path[len(prefix) :])
            if name is None:
                continue
            kind = 0 if path.endswith("/__init__.py") else (1 if path.endswith(".py") else 2)
            key = (rank, kind, path)
            if name not in found or key < found[name]:
                found[name] = key
            break
    return {name: key[2] for name, key in sorted(found.items())}


class Analysis:
    """The static and the possible closure of one program (see the module docstring)."""

    def __init__(self, program: PythonProgram, load: Loader | None = None) -> None:
        self.program = program
        self.load = load
        self.loaded: dict[str, Mapping[str, Any]] = dict(program.facts)
        self.paths: dict[str, str] = dict(program.modules)
        self.packages: dict[str, str] = {}  # module -> the package relative imports start at
        for name, path in self.paths.items():
            self.packages[name] = name if path.endswith("/__init__.py") else name.rpartition(".")[0]
        self.roots: dict[str, Root] = {}
        for index, root in enumerate(program.roots):
            module = root.module if root.module != "__main__" else f"__main__{index or ''}"
            self.roots[module] = root
            self.paths[module] = root.path
            self.packages[module] = "" if module.startswith("__main__") else root.module
        self.parent: dict[str, str | None] = {}
        self.static: set[str] = set()
        # a computed import or exec in reached code: any module may be loaded and any of its
        # definitions used, so nothing outside the static closure is ruled out
        self.escaped = False
        self.opaque: set[str] = set()  # packages whose extension modules are reached
        self.sites: list[Site] = []  # dynamic imports / exec in reached scopes
        self.blind: list[str] = []  # reached files that could not be parsed
        self._resolved: dict[tuple[str, str], str | None] = {}
        if program.closure is not None:
            self.parent = dict(program.closure.parent)
            self.static = set(program.closure.static)
            self.sites = list(program.closure.sites)
            self.blind = list(program.closure.blind)
            self.escaped = program.closure.escaped
            self.opaque = set(program.closure.opaque)
        else:
            self._run()

    def closure(self) -> Closure:
        return Closure(
            dict(self.parent),
            frozenset(self.static),
            tuple(self.sites),
            tuple(self.blind),
            self.escaped,
            tuple(sorted(self.opaque)),
        )

    # ------------------------------------------------------------ names

    def file_facts(self, path: str) -> Mapping[str, Any] | None:
        found = self.loaded.get(path)
        if found is None and self.load is not None and path.endswith(".py"):
            found = self.load(path)
            if found is not None:
                self.loaded[path] = found
        return found

    def facts(self, module: str) -> Mapping[str, Any]:
        path = self.paths.get(module)
        return (self.file_facts(path) or {}) if path is not None else {}

    def resolve(self, ref: str, module: str, depth: int = 0) -> str | None:
        """The node a dotted name written in ``module`` refers to, or None (a local, a
        builtin, something outside the image's Python path)."""
        key = (module, ref)
        if key in self._resolved:
            return self._resolved[key]
        self._resolved[key] = None  # a cycle of re-exports resolves to nothing
        found = self._resolve(ref, module, depth)
        self._resolved[key] = found
        return found

    def _resolve(self, ref: str, module: str, depth: int) -> str | None:
        if depth > _DEPTH:
            return None
        facts = self.facts(module)
        head, _, rest = ref.partition(".")
        for target in facts.get("b", {}).get(head, ()):
            if target.startswith("="):
                found = self.resolve(target[1:] + ("." + rest if rest else ""), module, depth + 1)
            else:
                absolute = absolute_name(target, self.packages.get(module, ""))
                found = (
                    self.qualified(absolute + ("." + rest if rest else ""), depth + 1)
                    if absolute
                    else None
                )
            if found is not None:
                return found
        found = self.in_module(module, ref, depth)
        if found is not None:
            return found
        for star in facts.get("y", ()):
            absolute = absolute_name(star, self.packages.get(module, ""))
            if absolute:
                found = self.qualified(f"{absolute}.{ref}", depth + 1)
                if found is not None and found != absolute:
                    return found
        return None

    def in_module(self, module: str, dotted: str, depth: int = 0) -> str | None:
        """A name defined by ``module`` itself (a function, a class, a method of one)."""
        facts = self.facts(module)
        scopes = facts.get("s", {})
        classes = facts.get("c", {})
        parts = dotted.split(".")
        if parts[0] in classes:
            qualname = parts[0]
            for part in parts[1:]:
                longer = f"{qualname}.{part}"
                if longer in classes:
                    qualname = longer
                elif longer in scopes:
                    return f"{module}:{longer}"
                else:
                    break
            return f"{module}:{qualname}"
        if parts[0] in scopes and parts[0] != "":
            return f"{module}:{parts[0]}"
        submodule = f"{module}.{parts[0]}"
        if submodule in self.paths:
            return self.qualified(".".join([submodule, *parts[1:]]), depth + 1)
        return None

    def qualified(self, dotted: str, depth: int = 0) -> str | None:
        """The node an absolute dotted name refers to: the longest module prefix, then the
        name in that module (through its re-exports)."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            if module in self.paths:
                if cut == len(parts):
                    return module
                return self.resolve(".".join(parts[cut:]), module, depth + 1)
        return None

    # ------------------------------------------------------------ closures

    def _run(self) -> None:
        queue: deque[str] = deque()
        for module in self.roots:
            self._reach(module, None, queue)
        dynamic: list[tuple[str, str]] = []  # (node, reason) found in static scopes
        self._drain(queue, dynamic, possible=False)
        self.static = set(self.parent)
        # the possible closure: what the dynamic sites may add, and what that reaches
        self._drain(queue, dynamic, possible=True)

    def _reach(self, node: str, parent: str | None, queue: deque[str]) -> None:
        if node not in self.parent:
            self.parent[node] = parent
            queue.append(node)

    def _drain(self, queue: deque[str], dynamic: list[tuple[str, str]], *, possible: bool) -> None:
        if possible:
            for node, _ in dynamic:
                self._expand_dynamic(node, queue)
        while queue:
            node = queue.popleft()
            module, _, qualname = node.partition(":")
            path = self.paths.get(module, "")
            facts = self.file_facts(path) if path else None
            if not qualname:  # a module: its imports, and its top level runs
                self._imports(module, path, queue)
                if facts is None and path and not path.endswith(".py"):
                    dynamic.append((node, "extension"))
                    if possible:
                        self._expand_dynamic(node, queue)
                unread = facts is None and path.endswith(".py") and not _stdlib(path)
                if (unread or (facts is not None and "e" in facts)) and path not in self.blind:
                    self.blind.append(path)
            if facts is None or "e" in facts:
                continue
            scopes = facts.get("s", {})
            classes = facts.get("c", {})
            if qualname in classes:  # a class in use: its methods, nested classes and bases
                for name in scopes:
                    if name.startswith(qualname + "."):
                        self._reach(f"{module}:{name}", node, queue)
                for name in classes:
                    if name.startswith(qualname + "."):
                        self._reach(f"{module}:{name}", node, queue)
                for base in classes[qualname]:
                    found = self.resolve(base, module)
                    if found is not None:
                        self._reach(found, node, queue)
            for ref in scopes.get(qualname, ()):
                if ref.startswith("?"):
                    continue  # read from an unknown object: only a computed import matters
                found = self.resolve(ref, module)
                if found is not None:
                    self._reach(found, node, queue)
            for scope, line, kind, what in facts.get("x", ()):
                if scope == qualname:
                    dynamic.append((node, kind))
                    if kind != "getattr":
                        self.sites.append(Site(path, line, kind, what))
                    if possible:
                        self._expand_dynamic(node, queue)

    def _imports(self, module: str, path: str, queue: deque[str]) -> None:
        package = self.packages.get(module, "")
        names = list(self.program.imports.get(path, ()))
        names += (self.file_facts(path) or {}).get("i", ())
        for name in names:
            absolute = absolute_name(name, package)
            if absolute is None:
                continue
            parts = absolute.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                prefix = ".".join(parts[:depth])
                if prefix not in self.paths:
                    break
                self._reach(prefix, f"{module}", queue)

    def _expand_dynamic(self, node: str, queue: deque[str]) -> None:
        """What a dynamic site at ``node`` may reach (the possible closure only)."""
        module, _, qualname = node.partition(":")
        path = self.paths.get(module, "")
        facts = self.file_facts(path) if path else None
        if facts is None:  # an extension module: its own package is opaque from here
            owner = self.program.owners.get(path)
            if owner is not None:
                self.opaque.add(owner)
            return
        for scope, _, kind, what in facts.get("x", ()):
            if scope != qualname:
                continue
            if kind == "getattr":
                target = self.resolve(what, module)
                if target is not None and ":" not in target:
                    self._reach_all(target, node, queue)
            else:  # any module may be loaded, and any of its definitions used
                self.escaped = True

    def _reach_all(self, module: str, parent: str, queue: deque[str]) -> None:
        self._reach(module, parent, queue)
        facts = self.facts(module)
        for name in (*facts.get("s", {}), *facts.get("c", {})):
            if name and "." not in name:
                self._reach(f"{module}:{name}", parent, queue)

    # ------------------------------------------------------------ answers

    def chain(self, node: str) -> tuple[str, ...]:
        """Entrypoint file -> modules -> functions, for a reached node."""
        nodes: list[str] = []
        current: str | None = node
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            nodes.append(current)
            current = self.parent.get(current)
        out: list[str] = []
        for item in reversed(nodes):
            module, _, qualname = item.partition(":")
            if module in self.roots and not qualname:
                root = self.roots[module]
                out.append("/" + root.path)
            elif not qualname:
                out.append(f"{module} (/{self.paths.get(module, '?')})")
            else:
                shown = module if module not in self.roots else "/" + self.roots[module].path
                out.append(f"{shown}.{qualname}" if module not in self.roots else f"{qualname}")
        return tuple(out)

    def package_reached(self, purl: str) -> bool:
        owners = self.program.owners
        return any(owners.get(self.paths.get(n, "")) == purl for n in self.static if ":" not in n)


def _stdlib(path: str) -> bool:
    """The standard library's own files, which the walk does not read (as
    :func:`appliance.scanner.walk.is_python_source`)."""
    if not path.startswith(("usr/lib/python", "usr/local/lib/python")):
        return False
    return "/site-packages/" not in path and "/dist-packages/" not in path


def analyse(program: PythonProgram) -> Analysis:
    return Analysis(program)


def program_files(paths: Iterable[str]) -> list[str]:
    """The files of a tree that can be Python modules (sources and extension modules)."""
    return [p for p in paths if p.endswith(".py") or _EXTENSION.match(posixpath.basename(p))]


def absolute_name(name: str, package: str) -> str | None:
    """The module a (possibly relative) import ``name`` names from inside ``package``, or
    None when it climbs above the top package."""
    if not name.startswith("."):
        return name
    dots = len(name) - len(name.lstrip("."))
    base = package.split(".") if package else []
    if dots - 1 > len(base):
        return None
    base = base[: len(base) - (dots - 1)]
    rest = name[dots:]
    joined = ".".join([*base, rest] if rest else base)
    return joined or None
