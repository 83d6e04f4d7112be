"""Tenants of one appliance home, and the boundary that keeps each process inside its own.

A tenant is a directory ``$STELLA_HOME/tenants/NAME/`` laid out as a home of its own (its
``state.db``, keys and key ring, trust roots, VEX, audit log, transparency log, OCI layout,
inbox); the home's ``knowledge.db`` is shared with every tenant, read only (docs/scale-out.md,
"Tenants"). The name is the only thing a user types, so it is checked strictly: it becomes a
directory name and a PostgreSQL schema name, and neither may be steered anywhere else.

Isolation is enforced by the process, not by convention. :func:`confine` puts the process
behind a :class:`Boundary`; an audit hook (``sys.addaudithook``, PEP 578) then sees every file
the process opens, lists, creates, renames or removes, and every SQLite database it connects
to, resolves the path with every symbolic link followed, and refuses with
:class:`TenantBoundaryError` a path that lands in another tenant's directory (or, for a tenant,
anywhere in the home outside its own directory but the shared knowledge store, which it may
only read). A command-line argument naming a file inside another tenant, a symbolic link
planted inside a tenant pointing to another, a path with ``..`` in it: all resolve to where
they really lead, and are refused there.

The boundary guards against what a command is asked to do, not against code running in the
process: Python code can do anything its user can (the hook is the process's own promise).
Tenants that must not trust each other's operators run under different operating-system users,
each owning its tenant directory (mode 0700), as docs/scale-out.md describes.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

from bundles.errors import StellaError, UsageError

ENV: Final = "STELLA_TENANT"
TENANTS_DIR: Final = "tenants"
TENANT_MARKER: Final = ".stella-tenant"
KNOWLEDGE_FILE: Final = "knowledge.db"
ADMIN_PUB: Final = "keys/appliance.pub"
SCHEMA_PREFIX: Final = "tenant_"
QUEUE_SUFFIX: Final = "_queue"
ADMIN_QUEUE_SCHEMA: Final = "stella_queue"
"""The job queue's schema of the home's administrator (no tenant): where the queue was before
tenants had queues of their own, so a site without tenants keeps its queue."""
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""Lower-case letter first, then lower-case letters, digits or ``_``; at most 32 characters.

Safe as a directory name, inside a systemd unit name and, prefixed with ``tenant_``, as an
unquoted PostgreSQL identifier (well under its 63-byte limit): no ``/``, ``.``, ``-``, space or
upper case, so ``../x``, ``A`` and ``a-b`` are all refused rather than rewritten."""


class TenantNameError(UsageError):
    """A tenant name that does not match :data:`NAME_PATTERN`."""


class TenantError(UsageError):
    """A tenant that does not exist, or options that disagree on which tenant is meant."""


class TenantBoundaryError(StellaError):
    """The process was asked to reach outside its tenant."""


def check_name(name: str, *, source: str = "--tenant") -> str:
    """Return ``name`` when it is a valid tenant name, else refuse it in one line."""
    if not NAME_PATTERN.fullmatch(name):
        raise TenantNameError(
            f"{source} {name!r} is not a valid tenant name",
            hint="use 1 to 32 characters: a lower-case letter, then lower-case letters, "
            "digits or '_'",
        )
    return name


def pg_schema(name: str) -> str:
    """The PostgreSQL schema of tenant ``name``: ``tenant_<name>``, an identifier that needs
    no quoting (:data:`NAME_PATTERN`); :func:`quote_identifier` quotes it all the same."""
    return SCHEMA_PREFIX + check_name(name)


def queue_schema(name: str | None) -> str:
    """The PostgreSQL schema of the job queue of tenant ``name``: ``tenant_<name>_queue`` (at
    most 45 characters, valid unquoted), beside the tenant's stores and apart from every other
    tenant's queue; :data:`ADMIN_QUEUE_SCHEMA` for the home's administrator (None)."""
    return ADMIN_QUEUE_SCHEMA if name is None else pg_schema(name) + QUEUE_SUFFIX


def quote_identifier(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (``"`` doubled), for DDL that cannot bind it."""
    if "\x00" in identifier:
        raise ValueError("an SQL identifier cannot hold a NUL character")
    return '"' + identifier.replace('"', '""') + '"'


def resolve_tenant(option: str | None, env: str | None, *, where: str = "--tenant") -> str | None:
    """The tenant an invocation names: the option and ``$STELLA_TENANT`` must agree when both
    are given (a script that sets one and a user who types the other must not silently get
    either); an empty variable counts as unset."""
    env = env or None
    if option is not None:
        check_name(option, source=where)
    if env is not None:
        check_name(env, source=ENV)
    if option is not None and env is not None and option != env:
        raise TenantError(
            f"{where} {option!r} and {ENV}={env!r} name different tenants",
            hint=f"unset {ENV} or give the same name to {where}",
        )
    return option if option is not None else env


def list_tenants(base: Path) -> list[str]:
    """The tenants of the home ``base``: the directories of ``tenants/`` whose name is valid
    and which hold the tenant marker (names only: nothing inside a tenant is read)."""
    try:
        entries = sorted(os.listdir(base / TENANTS_DIR))
    except FileNotFoundError:
        return []
    return [
        name
        for name in entries
        if NAME_PATTERN.fullmatch(name)
        and not (base / TENANTS_DIR / name).is_symlink()
        and (base / TENANTS_DIR / name / TENANT_MARKER).is_file()
    ]


KEYS_DIR: Final = ".keys"
"""``tenants/.keys/KEYID``: which tenant each signing key belongs to (first claim wins)."""
_KEYID: Final = re.compile(r"[0-9a-f]{64}")


def claim_key(base: Path, tenant: str, keyid: str, *, administrator: str | None) -> None:
    """Record that ``keyid`` signs for ``tenant``, refusing a key that already signs for
    another tenant or for the home's administrator (``administrator``: its keyid).

    Two tenants whose ``--signer pkcs11:…`` URIs name one token key would sign each other's
    verdicts; the claim is made with ``O_EXCL``, so of two tenants racing for one key exactly
    one gets it. Only key ids are recorded (public), never a key.
    """
    check_name(tenant)
    if not _KEYID.fullmatch(keyid):
        raise ValueError(f"not a key id: {keyid!r}")
    if administrator == keyid:
        raise TenantBoundaryError(
            f"the key {keyid[:16]} is the home administrator's key; tenant {tenant!r} cannot "
            "sign with it",
            hint="give the tenant a key of its own (another key label in the token, or none)",
        )
    registry = base / TENANTS_DIR / KEYS_DIR
    registry.mkdir(mode=0o700, exist_ok=True)
    path = registry / keyid
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as fh:
            owner = fh.read(64).decode("ascii", "replace").strip()
        if owner != tenant:
            raise TenantBoundaryError(
                f"the key {keyid[:16]} already signs for tenant {owner!r}; tenant {tenant!r} "
                "cannot sign with it",
                hint="give the tenant a key of its own (another key label in the token, or none)",
            ) from None
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(tenant + "\n")
        fh.flush()
        os.fsync(fh.fileno())


_O_PATH: Final = getattr(os, "O_PATH", 0)
_state = threading.local()  # .busy: this thread is inside the hook (or resolving a boundary)


def _real(path: str | Path) -> str:
    """``path`` with every symbolic link followed. The kernel resolves it (an ``O_PATH``
    descriptor, read back from ``/proc/self/fd``): one call instead of ``realpath``'s one per
    component, which matters on every file the process opens. A path that does not exist yet
    (a file being created), or a system without ``O_PATH``, resolves with ``realpath``."""
    if _O_PATH:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return os.path.realpath(path)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return os.path.realpath(path)
        finally:
            os.close(fd)
    return os.path.realpath(path)


def _inside(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or below it (both resolved; strings, as this runs on every
    file the process opens)."""
    return path == directory or path.startswith(directory + os.sep)


@dataclass(frozen=True, slots=True)
class Boundary:
    """Where one process may reach within the home ``base`` (resolved, links followed).

    ``tenant`` None is the home's administrator: everything in the home but ``tenants/``.
    A tenant: its own directory; the shared knowledge store, read only; the home and
    ``tenants/`` directories themselves (to list them and create the tenant's directory); the
    key claims (:func:`claim_key`) and the administrator's public key. Paths outside the home
    are the user's own files and are not this boundary's business, unless they resolve into
    the home.
    """

    base: Path
    tenant: str | None
    _base: str = field(init=False, repr=False, compare=False)
    _tenants: str = field(init=False, repr=False, compare=False)
    _own: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tenant is not None:
            check_name(self.tenant)
        base = str(self.base)
        tenants = os.path.join(base, TENANTS_DIR)
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_tenants", tenants)
        own = base if self.tenant is None else os.path.join(tenants, self.tenant)
        object.__setattr__(self, "_own", own)

    @classmethod
    def of(cls, base: Path, tenant: str | None) -> Boundary:
        """The boundary of ``tenant`` (None: the administrator) in the home ``base``.

        ``tenants/`` and the tenant's directory must be plain directories of the home (or not
        exist yet): were either a link, the paths under it would resolve outside the home,
        where the boundary does not look."""
        # Resolving reads nothing, so the boundary this process is behind now (the
        # administrator's, before 'init --tenant' narrows it) does not judge it.
        before = getattr(_state, "busy", False)
        _state.busy = True
        try:
            real = Path(_real(base))
            boundary = cls(real, tenant)
            for name in (TENANTS_DIR, *((TENANTS_DIR + os.sep + tenant,) if tenant else ())):
                given = base / name
                resolved = _real(given)
                if resolved != os.path.join(real, name):
                    raise TenantBoundaryError(
                        f"{given}: is a symbolic link (to {resolved}), not a directory of the home",
                        hint="replace it with a plain directory (mode 0700) holding what it "
                        "pointed to",
                    )
        finally:
            _state.busy = before
        return boundary

    @property
    def own(self) -> Path:
        return Path(self._own)

    @property
    def who(self) -> str:
        return f"tenant {self.tenant!r}" if self.tenant else "the home's administrator"

    def check(self, path: str | Path, *, write: bool, listing: bool = False) -> None:
        """Refuse ``path`` (already resolved) when it lies outside what this process owns."""
        path = os.fspath(path)
        base, tenants = self._base, self._tenants
        if not _inside(path, base):
            return
        if path in (base, tenants) and (
            listing or not write or (path == tenants and self.tenant is not None)
        ):
            return  # reading or listing the home or tenants/; creating tenants/ for a tenant
        if self.tenant is None:
            if not _inside(path, tenants):
                return
        else:
            if _inside(path, self._own):
                return
            knowledge = os.path.join(base, KNOWLEDGE_FILE)
            if path == knowledge and not write:
                return
            if _inside(path, os.path.join(tenants, KEYS_DIR)) or (
                path == os.path.join(base, ADMIN_PUB) and not write
            ):
                return  # key ids claimed (claim_key) and the administrator's public key
            if path == knowledge:
                raise TenantBoundaryError(
                    f"{path}: the shared knowledge store is read only for {self.who}",
                    hint="the home's administrator imports shared knowledge (stella import "
                    "without --tenant); a tenant's own imports go to its own directory",
                )
        raise TenantBoundaryError(
            f"{path}: outside the directory of {self.who} ({self._own})",
            hint="a tenant reaches only its own files; copy what it may see out of the home, "
            "or run the command as the tenant that owns it",
        )


_current: Boundary | None = None
_installed = False
_lock = threading.Lock()

_WRITE_FLAGS: Final = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _path_of(value: Any, dir_fd: Any = None) -> str | None:
    """The absolute path an audit event's argument names (relative to ``dir_fd`` when the
    call used one), or None for a file descriptor."""
    if isinstance(value, int) or value is None:
        return None
    if isinstance(value, bytes):
        text = os.fsdecode(value)
    elif isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
    else:
        return None
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(text):
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
    return os.path.abspath(text)


def _sqlite_target(database: Any) -> tuple[str | None, bool]:
    """The file a ``sqlite3.connect`` argument opens, and whether it may write to it."""
    if isinstance(database, (bytes, os.PathLike)) or not isinstance(database, str):
        return _path_of(database), True
    if database == ":memory:" or database == "":
        return None, False
    if database.startswith("file:"):
        parts = urlsplit(database)
        modes = parse_qs(parts.query).get("mode", [])
        path = unquote(parts.path)
        if not path or path == ":memory:" or "memory" in modes:
            return None, False
        return os.path.abspath(path), modes != ["ro"]
    return _path_of(database), True


def _checks(event: str, args: tuple[Any, ...]) -> Iterator[tuple[str, bool, bool]]:
    """(path, write, listing) for each path an audit event touches."""
    if event == "open":
        path = _path_of(args[0])
        if path is not None:
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            write = bool(flags & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            yield path, write, False
    elif event in ("os.listdir", "os.scandir"):
        path = _path_of(args[0] if args else ".")
        if path is not None:
            yield path, False, True
    elif event in ("os.mkdir", "os.rmdir", "os.remove", "os.chmod", "os.chown", "os.utime"):
        dir_fd = args[-1] if event != "os.utime" else None
        path = _path_of(args[0], dir_fd)
        if path is not None:
            yield path, True, False
    elif event in ("os.truncate", "shutil.rmtree", "os.chdir"):
        path = _path_of(args[0])
        if path is not None:
            yield path, event != "os.chdir", False
    elif event in ("os.rename", "os.link", "shutil.copyfile", "shutil.copytree", "shutil.move"):
        src_fd = args[2] if event == "os.rename" and len(args) > 2 else None
        dst_fd = args[3] if event == "os.rename" and len(args) > 3 else None
        src, dst = _path_of(args[0], src_fd), _path_of(args[1], dst_fd)
        moving = event in ("os.rename", "shutil.move")
        if src is not None:
            yield src, moving, False
        if dst is not None:
            yield dst, True, False
    elif event == "os.symlink":
        dst = _path_of(args[1], args[2] if len(args) > 2 else None)
        if dst is not None:
            yield dst, True, False
    elif event == "sqlite3.connect":
        path, write = _sqlite_target(args[0] if args else None)
        if path is not None:
            yield path, write, False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    boundary = _current
    if boundary is None or getattr(_state, "busy", False):
        return
    if event not in _EVENTS:
        return
    _state.busy = True
    try:
        for path, write, listing in _checks(event, args):
            boundary.check(_real(path), write=write, listing=listing)
    finally:
        _state.busy = False


_EVENTS: Final = frozenset(
    {
        "open",
        "os.listdir",
        "os.scandir",
        "os.mkdir",
        "os.rmdir",
        "os.remove",
        "os.chmod",
        "os.chown",
        "os.utime",
        "os.truncate",
        "os.chdir",
        "os.rename",
        "os.link",
        "os.symlink",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.move",
        "shutil.rmtree",
        "sqlite3.connect",
    }
)


def confine(boundary: Boundary | None) -> None:
    """Put this process behind ``boundary`` (None lifts it): every later file access is
    checked. The hook is installed once per process; confining again replaces the boundary
    (``stella init --tenant`` narrows the administrator's boundary to the new tenant)."""
    global _current, _installed
    with _lock:
        if not _installed and boundary is not None:
            sys.addaudithook(_hook)
            _installed = True
        _current = boundary


def current() -> Boundary | None:
    """The boundary this process is behind, if any."""
    return _current


def current_tenant() -> str | None:
    """The tenant this process acts for (None: the home's administrator, or no boundary)."""
    return _current.tenant if _current is not None else None


@contextmanager
def confined(boundary: Boundary | None) -> Iterator[None]:
    """Run a block behind ``boundary``, then restore the boundary that was there before
    (tests run many commands in one process)."""
    before = _current
    confine(boundary)
    try:
        yield
    finally:
        confine(before)


def read_only_uri(path: Path) -> str:
    """A SQLite URI opening ``path`` read only (how a tenant opens the shared knowledge)."""
    return "file:" + quote(os.path.abspath(path)) + "?mode=ro"


def opens_read_only(path: Path) -> bool:
    """True when this process must open the database ``path`` read only: it is the shared
    knowledge store and the process acts for a tenant."""
    boundary = _current
    if boundary is None or boundary.tenant is None:
        return False
    return _real(path) == os.path.join(boundary.base, KNOWLEDGE_FILE)


__all__ = [
    "ENV",
    "NAME_PATTERN",
    "TENANTS_DIR",
    "TENANT_MARKER",
    "Boundary",
    "TenantBoundaryError",
    "TenantError",
    "TenantNameError",
    "check_name",
    "claim_key",
    "confine",
    "confined",
    "current",
    "current_tenant",
    "list_tenants",
    "opens_read_only",
    "pg_schema",
    "quote_identifier",
    "read_only_uri",
    "resolve_tenant",
]
