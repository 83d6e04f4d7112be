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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

_IDENT: Final = re.compile(r"^[A-Za-z_]\w*$")
_EXTENSION: Final = re.compile(r"^(?P<name>[A-Za-z_]\w*)\.(?:[\w-]+\.)?(?:so|pyd)$")
_DEPTH: Final = 12  # re-export hops followed before a name is given up


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

    def to_dict(self) -> dict[str, Any]:
        return {
            # insertion order is the walk's order, which is deterministic
            "parent": [[node, parent] for node, parent in self.parent.items()],
            "static": sorted(self.static),
            "sites": [[s.path, s.line, s.kind, s.what] for s in self.sites],
            "blind": list(self.blind),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Closure:
        return cls(
            {str(n): (str(p) if p is not None else None) for n, p in data["parent"]},
            frozenset(data["static"]),
            tuple(Site(str(a), int(b), str(c), str(d)) for a, b, c, d in data["sites"]),
            tuple(data["blind"]),
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

    def analysed(self) -> PythonProgram:
        """The program with its closure computed (done once, at scan time)."""
        if self.closure is not None or not self.roots:
            return self
        return replace(self, closure=Analysis(self).closure())


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


def _absolute(name: str, package: str) -> str | None:
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


class Analysis:
    """The static and the possible closure of one program (see the module docstring)."""

    def __init__(self, program: PythonProgram) -> None:
        self.program = program
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
        # attribute names read from objects the reading cannot name (``x.run`` of a local
        # ``x``); once a computed import may hand out a module object, any definition of
        # that name may be what is read (the possible closure only)
        self.attributes: set[str] = set()
        self.escaped = False
        self._by_name: dict[str, list[str]] | None = None
        self.sites: list[Site] = []  # dynamic imports / exec in reached scopes
        self.blind: list[str] = []  # reached files that could not be parsed
        self._resolved: dict[tuple[str, str], str | None] = {}
        if program.closure is not None:
            self.parent = dict(program.closure.parent)
            self.static = set(program.closure.static)
            self.sites = list(program.closure.sites)
            self.blind = list(program.closure.blind)
        else:
            self._run()

    def closure(self) -> Closure:
        return Closure(
            dict(self.parent), frozenset(self.static), tuple(self.sites), tuple(self.blind)
        )

    # ------------------------------------------------------------ names

    def facts(self, module: str) -> Mapping[str, Any]:
        path = self.paths.get(module)
        return self.program.facts.get(path, {}) if path is not None else {}

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
                absolute = _absolute(target, self.packages.get(module, ""))
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
            absolute = _absolute(star, self.packages.get(module, ""))
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
            facts = self.program.facts.get(path)
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
                    self._attribute(ref[1:], node, queue, possible)
                    continue
                found = self.resolve(ref, module)
                if found is not None:
                    self._reach(found, node, queue)
                elif "." in ref:
                    self._attribute(ref.split(".")[1], node, queue, possible)
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
        names += self.program.facts.get(path, {}).get("i", ())
        for name in names:
            absolute = _absolute(name, package)
            if absolute is None:
                continue
            parts = absolute.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
                prefix = ".".join(parts[:depth])
                if prefix not in self.paths:
                    break
                self._reach(prefix, f"{module}", queue)

    def _attribute(self, name: str, node: str, queue: deque[str], possible: bool) -> None:
        new = name not in self.attributes
        self.attributes.add(name)
        if possible and self.escaped and new:
            for target in self.by_name().get(name, ()):
                self._reach(target, node, queue)

    def by_name(self) -> dict[str, list[str]]:
        """Every module's top-level functions and classes, by name."""
        if self._by_name is None:
            index: dict[str, list[str]] = {}
            for module, path in sorted(self.paths.items()):
                facts = self.program.facts.get(path, {})
                for name in (*facts.get("s", {}), *facts.get("c", {})):
                    if name and "." not in name:
                        index.setdefault(name, []).append(f"{module}:{name}")
            self._by_name = index
        return self._by_name

    def _escape(self, node: str, queue: deque[str]) -> None:
        """A computed import may hand out any module object: from now on, an attribute read
        from an unknown object may be any definition of that name."""
        if self.escaped:
            return
        self.escaped = True
        index = self.by_name()
        for name in sorted(self.attributes):
            for target in index.get(name, ()):
                self._reach(target, node, queue)

    def _expand_dynamic(self, node: str, queue: deque[str]) -> None:
        """What a dynamic site at ``node`` may reach (the possible closure only)."""
        module, _, qualname = node.partition(":")
        path = self.paths.get(module, "")
        facts = self.program.facts.get(path)
        if facts is None:  # an extension module: any definition of its own package
            owner = self.program.owners.get(path)
            for name, other in self.paths.items():
                if owner is not None and self.program.owners.get(other) == owner:
                    self._reach_all(name, node, queue)
            return
        for scope, _, kind, what in facts.get("x", ()):
            if scope != qualname:
                continue
            if kind == "getattr":
                target = self.resolve(what, module)
                if target is not None and ":" not in target:
                    self._reach_all(target, node, queue)
            else:  # any module may be loaded, and its definitions used
                for name in self.paths:
                    self._reach(name, node, queue)
                self._escape(node, queue)

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
