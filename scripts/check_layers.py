#!/usr/bin/env python3
"""Enforce the dependency rule of shared/DESIGN.md §2: ``tui → appliance → bundles ← mirror``.

Every module of the four packages is parsed (never imported) and each import is checked:

1. **Packages.** A package imports only the packages :data:`ALLOWED` names for it.
2. **Rooms.** Inside ``appliance`` every module lives in a room of :data:`ROOMS` (the longest
   path of the table that holds it: ``appliance/scanner/model`` is a room of its own inside
   ``appliance/scanner``). A room imports only the rooms it names and, through them, what
   those may import: the table is a set of floors, and an arrow from a lower room to a higher
   one (``appliance/store`` importing ``appliance/vex``) is refused. The table itself must
   name only rooms that exist, and must not run in a circle.
3. **Circles.** No module reaches itself again through the modules it imports (file level,
   across all four packages).
4. **Edges.** Only the modules of :data:`NETWORK_ALLOWED` import a network client or server,
   only those of :data:`SQLITE_ALLOWED` import SQLite; each entry must exist.

Every import counts, wherever it stands: at the top of a module, inside a function (a lazy
import is still an arrow, and a circle closed lazily is still a circle), under
``if TYPE_CHECKING:`` (a type-only import still says which module the type belongs to),
a command registered with ``cli.add_lazy("name", "package.module:attribute")`` and
``importlib.import_module("package.module")`` with a literal name. There is no marker to
exempt one: a circle is broken by moving what both sides need into a module below them.

``from a.b import c`` is an arrow to the module ``a/b/c.py`` when it exists, else to ``a/b``.
Exits 1 with one line per violation, each naming the file and line to change.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bundles", "mirror", "appliance", "tui")

# Which of the project's packages each package may import (itself included).
ALLOWED = {
    "bundles": {"bundles"},
    "mirror": {"mirror", "bundles"},
    "appliance": {"appliance", "bundles"},
    "tui": {"tui", "appliance", "bundles"},
}

# The appliance's rooms, lowest first, each with the rooms it may import (besides itself and
# bundles, which every room may import). A room may also import whatever the rooms it names
# may import, never a room above it.
ROOMS: dict[str, tuple[str, ...]] = {
    "appliance/__init__": (),  # the package's docstring
    "appliance/tenancy": (),  # tenant names and the boundary a process acts behind
    "appliance/home": ("appliance/tenancy",),
    "appliance/faults": (),
    "appliance/scanner/model": (),  # the scanner's values, shared by every room above
    "appliance/sigstore/bundle": (),  # the Sigstore bundle format: read and write
    "appliance/rva/predicate": (),  # the RVA's predicate type, the name readers look RVAs up by
    "appliance/tlog": ("appliance/home", "appliance/sigstore/bundle"),
    "appliance/ecosystems": ("appliance/scanner/model",),
    "appliance/distros": ("appliance/scanner/model",),
    "appliance/versions": ("appliance/distros", "appliance/ecosystems"),
    "appliance/store": ("appliance/home", "appliance/ecosystems", "appliance/tlog"),
    "appliance/keyring": ("appliance/home", "appliance/store"),
    "appliance/sigstore": ("appliance/sigstore/bundle", "appliance/tlog"),
    "appliance/scanner": ("appliance/scanner/model", "appliance/home", "appliance/store"),
    "appliance/match": (
        "appliance/distros",
        "appliance/ecosystems",
        "appliance/versions",
        "appliance/scanner",
        "appliance/store",
    ),
    "appliance/vex": (
        "appliance/faults",
        "appliance/home",
        "appliance/match",
        "appliance/sigstore",
        "appliance/store",
        "appliance/tlog",
    ),
    "appliance/policy": ("appliance/match", "appliance/vex"),
    "appliance/report": ("appliance/match", "appliance/scanner", "appliance/vex"),
    "appliance/notation": (
        "appliance/home",
        "appliance/sigstore",
        "appliance/rva/predicate",
    ),  # a second signing backend
    "appliance/rva": (
        "appliance/faults",
        "appliance/home",
        "appliance/match",
        "appliance/notation",
        "appliance/policy",
        "appliance/scanner",
        "appliance/sigstore",
        "appliance/store",
        "appliance/tlog",
        "appliance/vex",
    ),
    "appliance/auditor": ("appliance/rva", "appliance/sigstore", "appliance/tlog"),
    "appliance/imagestore": (
        "appliance/home",
        "appliance/scanner",
        "appliance/sigstore",
        "appliance/store",
    ),
    "appliance/registry": ("appliance/home", "appliance/imagestore", "appliance/store"),
    "appliance/rescan": ("appliance/imagestore", "appliance/rva"),
    "appliance/intake": (
        "appliance/auditor",
        "appliance/faults",
        "appliance/rescan",
        "appliance/sigstore",
    ),
    # the job queue in PostgreSQL and the workers that take scan and gate jobs from it
    "appliance/fleet": ("appliance/rescan",),
    "appliance/doctor": ("appliance/intake", "appliance/keyring"),
    "appliance/console": ("appliance/auditor", "appliance/intake", "appliance/keyring"),
    "appliance/commands": (
        "appliance/console",
        "appliance/doctor",
        "appliance/fleet",
        "appliance/registry",
        "appliance/report",
    ),
    "appliance/cli": ("appliance/commands",),
}

# Modules that may open a network connection or serve one: the one registry client (in
# bundles, for the mirror's pulls and the appliance's pushes), the mirror's feed fetching, and
# on the appliance the registry push command and server, which serve the enclave's own
# network and are never used by import, scan, match or gate.
NETWORK_MODULES = {
    "requests",
    "urllib3",
    "httpx",
    "aiohttp",
    "oras",
    "http.client",
    "http.server",
    "urllib.request",
    "socket",
    "socketserver",
    "ssl",
    "ftplib",
    "smtplib",
    "xmlrpc",
}
NETWORK_ALLOWED = ("bundles/distribution", "mirror/fetch", "appliance/registry")

# Only the stores touch SQLite; the TUI never does.
SQLITE_MODULES = {"sqlite3", "sqlite_utils"}
SQLITE_ALLOWED = (
    "appliance/store",
    "appliance/scanner/cache",
    "appliance/scanner/analyzers/rpmdb",  # reads an image's rpmdb.sqlite, read-only
)
# Only the stores and the job queue speak to PostgreSQL (the scale-out backend of the same
# stores, and the queue the workers take jobs from).
POSTGRES_MODULES = {"psycopg", "psycopg_pool", "psycopg_binary", "psycopg2", "procrastinate"}
POSTGRES_ALLOWED = ("appliance/store", "appliance/fleet")


@dataclass(frozen=True, slots=True)
class Rules:
    """The tables the check applies; :data:`RULES` holds the project's own."""

    allowed: Mapping[str, set[str]] = field(default_factory=lambda: ALLOWED)
    rooms: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: ROOMS)
    room_package: str = "appliance"
    network_modules: set[str] = field(default_factory=lambda: NETWORK_MODULES)
    network_allowed: tuple[str, ...] = NETWORK_ALLOWED
    sqlite_modules: set[str] = field(default_factory=lambda: SQLITE_MODULES)
    sqlite_allowed: tuple[str, ...] = SQLITE_ALLOWED
    postgres_modules: set[str] = field(default_factory=lambda: POSTGRES_MODULES)
    postgres_allowed: tuple[str, ...] = POSTGRES_ALLOWED


RULES = Rules()


@dataclass(frozen=True, slots=True)
class Import:
    line: int
    module: str  # as written: "a.b" for "import a.b" and "from a.b import c"
    names: tuple[str, ...] = ()  # "c" for "from a.b import c"

    def candidates(self) -> Iterator[str]:
        """Each dotted name this import reaches: ``a.b.c`` (which is a module or a name in
        ``a.b``) for each name of ``from a.b import c``, else the module as written."""
        if not self.names:
            yield self.module
        for name in self.names:
            yield f"{self.module}.{name}"


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def imports(path: Path) -> list[Import]:
    """Every import of ``path``, wherever it stands (see the module's docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            found.append(Import(node.lineno, node.module, names))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "add_lazy" and len(node.args) == 2:
                # commands registered lazily: cli.add_lazy("name", "package.module:attribute")
                target = _literal(node.args[1])
                if target is not None:
                    found.append(Import(node.lineno, target.partition(":")[0]))
            elif name == "import_module" and node.args:
                target = _literal(node.args[0])
                if target is not None and not target.startswith("."):
                    found.append(Import(node.lineno, target))
    return sorted(found, key=lambda i: i.line)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import of ``path``."""
    return [(i.line, i.module) for i in imports(path)]


def _matches(module: str, names: Iterable[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _within(rel: str, entries: Iterable[str]) -> bool:
    """Whether the module path ``rel`` (``a/b/c.py``) is one of ``entries`` (a module
    ``a/b/c`` or a package ``a/b``)."""
    stem = rel.removesuffix(".py")
    return any(stem == e or stem.startswith(e + "/") for e in entries)


def _exists(root: Path, entry: str) -> bool:
    return (root / f"{entry}.py").is_file() or (root / entry).is_dir()


def _module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Tree:
    """The project's modules under ``root``: dotted name → path relative to ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}
        for package in PACKAGES:
            for path in sorted((root / package).rglob("*.py")):
                rel = path.relative_to(root).as_posix()
                self.files[_module_name(rel)] = rel

    def resolve(self, imp: Import) -> list[str]:
        """The project modules ``imp`` is an arrow to (the deepest module of each name it
        reaches), none for a module from elsewhere."""
        found: list[str] = []
        for name in imp.candidates():
            while name and name not in self.files:
                name = name.rpartition(".")[0]
            if name and name not in found:
                found.append(name)
        return found


# ----------------------------------------------------------------------------- rooms


def room_of(rel: str, rooms: Iterable[str]) -> str | None:
    """The longest room of the table that holds the module path ``rel``."""
    stem = rel.removesuffix(".py")
    holding = [r for r in rooms if stem == r or stem.startswith(r + "/")]
    return max(holding, key=len) if holding else None


def _reachable(rooms: Mapping[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """For each room, every room it may import: those it names, and theirs, and so on."""
    closure: dict[str, set[str]] = {}
    for start in rooms:
        seen: set[str] = set()
        todo = list(rooms[start])
        while todo:
            room = todo.pop()
            if room not in seen:
                seen.add(room)
                todo.extend(rooms.get(room, ()))
        closure[start] = seen
    return closure


def check_table(root: Path, rules: Rules) -> list[str]:
    """The tables themselves: every entry exists, every named room is declared, no circle."""
    problems: list[str] = []
    for entry in (
        *rules.rooms,
        *rules.network_allowed,
        *rules.sqlite_allowed,
        *rules.postgres_allowed,
    ):
        if not _exists(root, entry):
            problems.append(
                f"scripts/check_layers.py: the tables name {entry}, which does not exist "
                f"(neither {entry}.py nor {entry}/): remove the entry or fix its path"
            )
    for room, below in rules.rooms.items():
        for other in below:
            if other not in rules.rooms:
                problems.append(
                    f"scripts/check_layers.py: room {room} may import {other}, "
                    f"which is not a room of ROOMS: declare it"
                )
    declared = {room: [r for r in below if r in rules.rooms] for room, below in rules.rooms.items()}
    for component in _strongly_connected(declared):
        cycle = _shortest_cycle(component[0], declared, set(component))
        problems.append(
            f"scripts/check_layers.py: the floors of ROOMS run in a circle: "
            f"{' → '.join([*cycle, cycle[0]])}; a room names only rooms below it"
        )
    return problems


# ----------------------------------------------------------------------------- circles


def _strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of two modules or more, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _shortest_cycle(start: str, graph: Mapping[str, Iterable[str]], within: set[str]) -> list[str]:
    """The shortest path start → … → start through modules of ``within``."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node]):
            if succ not in within:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"{start} is in a circle but reaches no way back")


def check_circles(tree: Tree, arrows: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One line per circle: each hop as FILE:LINE of the import that leads on."""
    problems: list[str] = []
    for component in _strongly_connected(arrows):
        cycle = _shortest_cycle(component[0], arrows, set(component))
        chain = [cycle[0]]
        for i, module in enumerate(cycle[1:], 1):
            chain.append(
                f"{module} ({tree.files[module]}:{arrows[module][cycle[(i + 1) % len(cycle)]]})"
            )
        chain.append(cycle[0])
        more = ""
        if len(component) > len(cycle):
            more = f" (the circle also takes in {', '.join(sorted(set(component) - set(cycle)))})"
        first = f"{tree.files[cycle[0]]}:{arrows[cycle[0]][cycle[1]]}"
        problems.append(
            f"{first}: import circle: {' → '.join(chain)}{more}; move what both sides "
            f"need into a module below them"
        )
    return problems


# ----------------------------------------------------------------------------- the check


def check(root: Path = ROOT, rules: Rules = RULES) -> list[str]:
    """Every violation under ``root``, one line each (empty when the tree keeps the rule)."""
    tree = Tree(root)
    problems = check_table(root, rules)
    closure = _reachable(rules.rooms)
    arrows: dict[str, dict[str, int]] = {name: {} for name in tree.files}
    rule = "(allowed: tui → appliance → bundles ← mirror)"
    for name, rel in tree.files.items():
        package = rel.split("/")[0]
        room = room_of(rel, rules.rooms) if package == rules.room_package else None
        if package == rules.room_package and room is None:
            problems.append(
                f"{rel}:1: module in no room of ROOMS; declare its room and the rooms it may "
                f"import in scripts/check_layers.py"
            )
        for imp in imports(root / rel):
            top = imp.module.split(".")[0]
            if top in PACKAGES and top not in rules.allowed[package]:
                problems.append(f"{rel}:{imp.line}: {package} must not import {top} {rule}")
            reached = [imp.module, *(f"{imp.module}.{n}" for n in imp.names)]
            network = next((m for m in reached if _matches(m, rules.network_modules)), None)
            if network is not None and not _within(rel, rules.network_allowed):
                problems.append(
                    f"{rel}:{imp.line}: imports network module {network}; only "
                    f"{', '.join(rules.network_allowed)} may open or serve a connection"
                )
            sqlite = next((m for m in reached if _matches(m, rules.sqlite_modules)), None)
            if sqlite is not None and not _within(rel, rules.sqlite_allowed):
                problems.append(
                    f"{rel}:{imp.line}: imports {sqlite}; only the store modules "
                    f"({', '.join(rules.sqlite_allowed)}) may touch SQLite"
                )
            postgres = next((m for m in reached if _matches(m, rules.postgres_modules)), None)
            if postgres is not None and not _within(rel, rules.postgres_allowed):
                problems.append(
                    f"{rel}:{imp.line}: imports {postgres}; only the store modules "
                    f"({', '.join(rules.postgres_allowed)}) may touch PostgreSQL"
                )
            for target in tree.resolve(imp):
                if target == name:
                    continue
                arrows[name].setdefault(target, imp.line)
                target_rel = tree.files[target]
                if room is None or not target_rel.startswith(rules.room_package + "/"):
                    continue
                target_room = room_of(target_rel, rules.rooms)
                if target_room is None or target_room == room or target_room in closure[room]:
                    continue
                above = room in closure[target_room]
                problems.append(
                    f"{rel}:{imp.line}: room {room} must not import {target} (room "
                    f"{target_room}, {'above it' if above else 'not below it in ROOMS'}); "
                    f"{room} may import: {', '.join(sorted(closure[room])) or 'no other room'}"
                )
    problems.extend(check_circles(tree, arrows))
    return problems


# Known arrows against the rules, each with why it stands and what removes it. They are printed
# on every run, so they stay in sight; anything else fails the check. Keep this list short.
ACCEPTED: Final[dict[tuple[str, str], str]] = {
    ("appliance/home.py", "appliance.keyring"): (
        "Home.signing_key and Home.init reach the key ring, whose key switch writes an audit "
        "record with the store: a signer that needs the audit log that needs a signer. Removing "
        "it means the ring reporting a switch for its caller to record (docs/architecture.md)"
    ),
}


def accepted(problem: str) -> str | None:
    """Why ``problem`` is a known, accepted exception (:data:`ACCEPTED`), or None."""
    for (where, module), why in ACCEPTED.items():
        if problem.startswith(where + ":") and module in problem:
            return why
    return None


def main() -> int:
    found = check(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT, RULES)
    problems = [p for p in found if accepted(p) is None]
    for p in found:
        if p not in problems:
            print(f"accepted: {p} ({accepted(p)})")
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} violation(s)")
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
