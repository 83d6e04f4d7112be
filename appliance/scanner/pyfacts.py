"""What one Python source file names, read with :mod:`ast` without running it: the facts the
function-level reachability (:mod:`appliance.scanner.pyreach`) joins across files.

Per file, as a small JSON-able dict (kept in the per-layer cache, so short keys):

- ``b`` bindings: a name bound by an import, anywhere in the file, -> what it names, as
  written (``yaml``, ``.sessions.Session``); a top-level ``x = a.b`` alias is ``=a.b``;
- ``d`` the names the module's top level defines (functions, classes, assignments);
- ``c`` classes (dotted qualname) -> their base classes as written;
- ``s`` scopes -> the dotted names each refers to: ``""`` is the module's top level (class
  bodies included: they run at import), ``f`` a function, ``C.m`` a method. A nested
  function, lambda or class inside a function counts as its enclosing function. Inside a
  method, ``self.x``/``cls.x`` is written ``C.x``; an attribute read from a local variable
  is ``?x`` (its object is not known);
- ``y`` modules star-imported (``from m import *``);
- ``i`` modules imported by a call with a constant name (``importlib.import_module("m")``);
- ``x`` dynamic sites the static reading cannot follow: ``[scope, line, kind, what]`` with
  kind ``import`` (``__import__``/``import_module``/plugin loaders with a computed name),
  ``exec`` (``exec``/``eval``/``compile`` of computed code) or ``getattr`` (``getattr`` of a
  computed name on the object written in ``what``);
- ``e`` why the file could not be parsed (then only ``e`` is set).

The facts are cached per layer (:class:`appliance.scanner.cache.CachedFacts`), under a key
that holds ``WALK_VERSION`` (:mod:`appliance.scanner.layers`): a change to what they hold bumps
it. Nothing is resolved here: which module a
name belongs to depends on where the file sits on the interpreter's path, which only the image
as a whole says.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from typing import Any, Final

_IMPORTERS: Final = frozenset(
    {
        "__import__",
        "importlib.import_module",
        "importlib.__import__",
        "importlib.util.spec_from_file_location",
        "importlib.util.find_spec",
        "importlib.machinery.SourceFileLoader",
        "pkgutil.iter_modules",
        "pkgutil.walk_packages",
        "pkg_resources.iter_entry_points",
        "pkg_resources.load_entry_point",
        "importlib.metadata.entry_points",
        "importlib_metadata.entry_points",
    }
)
_EXECUTORS: Final = frozenset({"exec", "eval", "compile"})


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _constant_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


#: Fields that only ever hold leaves (contexts, operators): never walked.
_LEAF_FIELDS: Final = frozenset({"ctx", "op", "ops"})
_FIELDS: dict[type, tuple[str, ...]] = {}
_AST: Final = ast.AST
_CONSTANT: Final = ast.Constant


def _fields(kind: type) -> tuple[str, ...]:
    found = _FIELDS.get(kind)
    if found is None:
        found = tuple(f for f in getattr(kind, "_fields", ()) if f not in _LEAF_FIELDS)
        _FIELDS[kind] = found
    return found


class _Reader(ast.NodeVisitor):
    def __init__(self) -> None:
        self._methods: dict[type[ast.AST], Callable[[Any], None]] = {}
        self.bindings: dict[str, set[str]] = {}
        self.defined: set[str] = set()
        self.classes: dict[str, list[str]] = {}
        self.scopes: dict[str, set[str]] = {"": set()}
        self.stars: set[str] = set()
        self.imports: set[str] = set()
        self.dynamic: set[tuple[str, int, str, str]] = set()
        self.scope = ""
        self.classes_stack: list[str] = []  # qualnames of the classes whose body is being read
        self.self_name: tuple[str, str] | None = None  # (first parameter, its class)
        self.in_function = False
        # constant strings a loop variable takes (for x in ("a", "b"): __import__(x))
        self.loop_values: dict[str, tuple[str, ...]] = {}
        self.locals: list[frozenset[str]] = []  # names local to each function being read

    # ------------------------------------------------------------ the walk

    def visit(self, node: ast.AST) -> None:
        # NodeVisitor's dispatch, with each node type's method looked up once
        kind = type(node)
        method = self._methods.get(kind)
        if method is None:
            found: Callable[[Any], None] = getattr(self, "visit_" + kind.__name__, None) or (
                self.generic_visit
            )
            self._methods[kind] = method = found
        method(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        pass  # names nothing

    def generic_visit(self, node: ast.AST) -> None:
        visit = self.visit
        for name in _fields(type(node)):
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, _AST) and type(item) is not _CONSTANT:
                        visit(item)
            elif isinstance(value, _AST) and type(value) is not _CONSTANT:
                visit(value)

    # ------------------------------------------------------------ bindings

    def bind(self, name: str, target: str) -> None:
        self.bindings.setdefault(name, set()).add(target)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.bind(alias.asname, alias.name)
            else:
                head = alias.name.split(".")[0]
                self.bind(head, head)
            if not self.in_function and not self.classes_stack:
                self.defined.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.stars.add(module)
                continue
            sep = "" if module.endswith(".") else "."
            self.bind(alias.asname or alias.name, f"{module}{sep}{alias.name}")
            if not self.in_function and not self.classes_stack:
                self.defined.add(alias.asname or alias.name)

    # ------------------------------------------------------------ definitions

    def _top(self) -> bool:
        return not self.in_function and not self.classes_stack

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.visit(default)
        if self.in_function:  # nested: part of the enclosing function
            self.locals.append(_locals(node))
            self._body(node)
            self.locals.pop()
            return
        if self._top():
            self.defined.add(node.name)
        owner = self.classes_stack[-1] if self.classes_stack else ""
        saved = (self.scope, self.self_name, self.in_function)
        self.scope = f"{owner}.{node.name}" if owner else node.name
        self.scopes.setdefault(self.scope, set())
        self.in_function = True
        params = node.args.posonlyargs + node.args.args
        is_static = any(_dotted(d) == "staticmethod" for d in node.decorator_list)
        self.self_name = (params[0].arg, owner) if owner and params and not is_static else None
        self.locals.append(_locals(node) - ({params[0].arg} if self.self_name else set()))
        self._body(node)
        self.locals.pop()
        self.scope, self.self_name, self.in_function = saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def _body(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if isinstance(node, ast.Lambda):
            self.visit(node.body)
            return
        for statement in node.body:
            self.visit(statement)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for keyword in node.keywords:
            self.visit(keyword.value)
        if self.in_function:  # a class made by a function: part of that function
            for base in node.bases:
                self.visit(base)
            for statement in node.body:
                self.visit(statement)
            return
        if self._top():
            self.defined.add(node.name)
        qualname = ".".join([*self.classes_stack, node.name])
        self.classes[qualname] = [d for d in (_dotted(b) for b in node.bases) if d]
        for base in node.bases:
            if _dotted(base) is None:
                self.visit(base)
        self.classes_stack.append(qualname)
        for statement in node.body:
            self.visit(statement)
        self.classes_stack.pop()

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._top():
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.defined.add(name.id)
            value = _dotted(node.value)
            if value is not None and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self.bind(target.id, "=" + value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self._top() and isinstance(node.target, ast.Name):
            self.defined.add(node.target.id)
        if node.value is not None:
            self.visit(node.value)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        values: tuple[str, ...] | None = None
        if isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple | ast.List):
            found = [_constant_str(e) for e in node.iter.elts]
            if all(v is not None for v in found):
                values = tuple(v for v in found if v is not None)
        self.visit(node.iter)
        if values is not None and isinstance(node.target, ast.Name):
            saved = self.loop_values.get(node.target.id)
            self.loop_values[node.target.id] = values
            for statement in (*node.body, *node.orelse):
                self.visit(statement)
            if saved is None:
                self.loop_values.pop(node.target.id, None)
            else:
                self.loop_values[node.target.id] = saved
            return
        self.visit(node.target)
        for statement in (*node.body, *node.orelse):
            self.visit(statement)

    visit_AsyncFor = visit_For

    # ------------------------------------------------------------ references

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.visit(default)
        self.locals.append(_locals(node))
        self.visit(node.body)
        self.locals.pop()

    def refer(self, dotted: str) -> None:
        if self.locals and dotted.partition(".")[0] in self.locals[-1]:
            # a local variable or parameter, not the module-level name; the attribute read
            # from it is kept by name (``?name``): it may be a module object's function
            attribute = dotted.split(".")[1] if "." in dotted else ""
            if attribute:
                self.scopes.setdefault(self.scope, set()).add("?" + attribute)
            return
        if self.self_name is not None:
            first, owner = self.self_name
            if dotted == first or dotted.startswith(first + "."):
                dotted = owner + dotted[len(first) :]
        self.scopes.setdefault(self.scope, set()).add(dotted)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.refer(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node)
        if dotted is not None and isinstance(node.ctx, ast.Load):
            self.refer(dotted)
            return
        self.generic_visit(node)

    def _qualified(self, dotted: str) -> set[str]:
        """What a called name may be, through this file's import bindings."""
        head, _, rest = dotted.partition(".")
        out = {dotted}
        for target in self.bindings.get(head, ()):
            if not target.startswith((".", "=")):
                out.add(target + ("." + rest if rest else ""))
        return out

    def visit_Call(self, node: ast.Call) -> None:
        func = _dotted(node.func)
        if func is not None:
            names = self._qualified(func)
            first = node.args[0] if node.args else None
            if names & _IMPORTERS:
                self._dynamic_import(node, first, sorted(names & _IMPORTERS)[0])
            elif names & _EXECUTORS and first is not None and _constant_str(first) is None:
                self.dynamic.add((self.scope, node.lineno, "exec", func))
            elif "getattr" in names and len(node.args) >= 2:
                obj = _dotted(node.args[0])
                if _constant_str(node.args[1]) is None and obj is not None:
                    self.dynamic.add((self.scope, node.lineno, "getattr", obj))
                elif obj is not None and (attr := _constant_str(node.args[1])) is not None:
                    self.refer(f"{obj}.{attr}")
        self.generic_visit(node)

    def _dynamic_import(self, node: ast.Call, first: ast.AST | None, what: str) -> None:
        name = _constant_str(first) if first is not None else None
        if what in ("__import__", "importlib.import_module", "importlib.__import__"):
            if name is not None:
                package: ast.AST | None = next(
                    (k.value for k in node.keywords if k.arg == "package"),
                    node.args[1] if len(node.args) > 1 else None,
                )
                relative = name.startswith(".")
                anchor = _dotted(package) if package is not None else None
                if not relative or anchor in ("__name__", "__package__"):
                    self.imports.add(name)
                    return
            elif isinstance(first, ast.Name) and first.id in self.loop_values:
                self.imports.update(self.loop_values[first.id])
                return
        self.dynamic.add((self.scope, node.lineno, "import", what))

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "b": {k: sorted(v) for k, v in sorted(self.bindings.items())},
            "d": sorted(self.defined),
            "c": dict(sorted(self.classes.items())),
            "s": {k: sorted(v) for k, v in sorted(self.scopes.items())},
        }
        if self.stars:
            out["y"] = sorted(self.stars)
        if self.imports:
            out["i"] = sorted(self.imports)
        if self.dynamic:
            out["x"] = [list(d) for d in sorted(self.dynamic)]
        return out


def _locals(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """The names a function binds itself (parameters, assignments, loop and ``with``
    targets, nested definitions), minus those it declares ``global``; nested functions'
    bodies are theirs, not its."""
    args = node.args
    names = {
        a.arg
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        if a is not None
    }
    declared: set[str] = set()
    body: list[Any] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    while body:
        item = body.pop()
        kind = type(item)
        if kind is ast.Name:
            if type(item.ctx) is not ast.Load:  # Store or Del
                names.add(item.id)
            continue  # nothing below a name but its context
        if kind in _DEFINITIONS:
            names.add(item.name)
            continue
        if kind in _NOT_BELOW:
            # a lambda's body is its own; an import inside a function binds a module: keep
            # it resolvable; a constant binds nothing
            continue
        if kind is ast.Global or kind is ast.Nonlocal:
            declared.update(item.names)
            continue
        if kind is ast.ExceptHandler and item.name:
            names.add(item.name)
        if not isinstance(item, _AST):
            continue  # a string or None a field holds
        for name in _fields(kind):
            value = getattr(item, name, None)
            if type(value) is list:
                body.extend(value)
            elif value is not None:
                body.append(value)
    return frozenset(names - declared)


_DEFINITIONS: Final = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
_NOT_BELOW: Final = frozenset({ast.Lambda, ast.Import, ast.ImportFrom, ast.Constant})


#: A line holding nothing but literals (``1, 2, 3,``, ``(0x41, 'M', 'a'),`` or ``60: 2,``, a
#: comment after them allowed): the rows of the data tables some packages carry (idna's
#: uts46data, chardet's frequency tables and language models). They name nothing, and building
#: their syntax tree is most of the parse; they are blanked (line numbers kept) before parsing.
#: Removing whole elements keeps a list, tuple or dict valid.
_NUMBER: Final = r"-?(?:0[xX][0-9A-Fa-f]+|\d+(?:\.\d+)?)"
_LITERAL: Final = rf"""(?:{_NUMBER}|[ub]?'[^'\\\n]*'|[ub]?"[^"\\\n]*")"""
_LITERAL_ROW: Final = re.compile(
    rf"^[ \t]*(?:(?:{_NUMBER}[ \t]*,[ \t]*)+"
    rf"|\([ \t]*{_LITERAL}(?:[ \t]*,[ \t]*{_LITERAL})*[ \t]*,?[ \t]*\)[ \t]*,[ \t]*"
    rf"|{_LITERAL}[ \t]*:[ \t]*{_NUMBER}[ \t]*,[ \t]*)(?:#[^\n]*)?$",
    re.MULTILINE,
)
_BLANK_FROM: Final = 8 << 10  # smaller files parse fast enough as they are


def _without_literal_rows(source: str) -> str:
    return _LITERAL_ROW.sub("", source) if len(source) >= _BLANK_FROM else source


def python_facts(source: str | bytes) -> dict[str, Any]:
    """The facts of one source file (see the module's docstring); a file that does not parse
    gives ``{"e": reason}``."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    try:
        with warnings.catch_warnings():
            # invalid escapes and the like warn at compile time: the image's code is read,
            # not judged, and nothing may print or (under -W error) fail because of it
            warnings.simplefilter("ignore")
            blanked = _without_literal_rows(source)
            try:
                tree = ast.parse(blanked)
            except SyntaxError:
                if blanked is source:
                    raise
                tree = ast.parse(source)  # a row was part of something else: read it all
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        line = getattr(e, "lineno", None)
        return {"e": f"{type(e).__name__}{f' at line {line}' if line else ''}: {e}"[:200]}
    reader = _Reader()
    try:
        reader.visit(tree)
    except RecursionError:
        return {"e": "nesting too deep to read"}
    return reader.facts()


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _names(value: object) -> bool:
    """A mapping of names to lists of names (``b``, ``c``, ``s``)."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and _strings(v) for k, v in value.items()
    )


def _site(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and isinstance(value[0], str)
        and type(value[1]) is int
        and isinstance(value[2], str)
        and isinstance(value[3], str)
    )


def valid_facts(value: object) -> bool:
    """Whether ``value`` has the shape :func:`python_facts` gives (what a cached copy must
    have before it is used: nothing read back is trusted blindly)."""
    if not isinstance(value, dict):
        return False
    if "e" in value:
        return len(value) == 1 and isinstance(value["e"], str)
    if not {"b", "d", "c", "s"} <= value.keys() <= {"b", "d", "c", "s", "y", "i", "x"}:
        return False
    return (
        _names(value["b"])
        and _strings(value["d"])
        and _names(value["c"])
        and _names(value["s"])
        and _strings(value.get("y", []))
        and _strings(value.get("i", []))
        and isinstance(value.get("x", []), list)
        and all(_site(site) for site in value.get("x", []))
    )
