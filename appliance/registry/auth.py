"""Basic authentication for ``stella serve``: an htpasswd file or one user from the command
line whose password comes from an environment variable (never from argv, which ``ps`` shows).

htpasswd entries may be bcrypt (``$2y$``/``$2b$``/``$2a$``, what ``htpasswd -B`` writes and
docker-registry requires) or ``{SHA}`` (base64 SHA-1, legacy); other schemes (MD5-crypt,
crypt, plain) are refused when the file is read, naming the line, so a file never silently
authenticates nobody.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

import bcrypt

from appliance.registry.errors import ServeConfigError
from bundles.distribution.credentials import Credentials

_BCRYPT_PREFIXES: Final = ("$2y$", "$2b$", "$2a$")
_HTPASSWD_LIMIT: Final = 1 << 20


def credentials_from_env(user: str | None, password_env: str | None) -> Credentials | None:
    """``--user NAME --password-env VAR`` as credentials; both or neither must be given."""
    if user is None and password_env is None:
        return None
    if user is None or password_env is None:
        raise ServeConfigError(
            "--user and --password-env go together",
            hint="give the user name with --user and the variable holding its password with "
            "--password-env",
        )
    password = os.environ.get(password_env)
    if not password:
        raise ServeConfigError(
            f"environment variable {password_env} (from --password-env) is not set or empty",
            hint=f"export {password_env} with the password of user {user!r}",
        )
    return Credentials(user, password)


class Authenticator:
    """Checks ``Authorization: Basic`` headers against known users.

    Successful checks are cached by the exact header (a keyed hash of it) so a client that
    sends the same credentials on every request pays bcrypt's cost once per process.
    """

    def __init__(self, users: Mapping[str, str], realm: str = "stella") -> None:
        if not users:
            raise ServeConfigError("no users to authenticate", hint="the htpasswd file is empty")
        self._users = MappingProxyType(dict(users))
        self.realm = realm
        self._ok: set[bytes] = set()
        self._key = os.urandom(32)
        self._lock = threading.Lock()

    @classmethod
    def from_htpasswd(cls, path: Path) -> Authenticator:
        try:
            if path.stat().st_size > _HTPASSWD_LIMIT:
                raise ServeConfigError(f"{path}: htpasswd file over {_HTPASSWD_LIMIT} bytes")
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ServeConfigError(f"cannot read htpasswd file {path}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise ServeConfigError(f"{path}: htpasswd file is not UTF-8") from e
        users: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            if not sep or not name or not stored:
                raise ServeConfigError(f"{path}:{number}: not a NAME:HASH line")
            if not stored.startswith((*_BCRYPT_PREFIXES, "{SHA}")):
                raise ServeConfigError(
                    f"{path}:{number}: user {name!r} has a password hash of an unsupported "
                    f"scheme ({stored[:4]!r})",
                    hint="write the file with 'htpasswd -B' (bcrypt)",
                )
            users[name] = stored
        if not users:
            raise ServeConfigError(
                f"htpasswd file {path} lists no users",
                hint=f"add one with 'htpasswd -B {path} NAME'",
            )
        return cls(users)

    @classmethod
    def single(cls, credentials: Credentials) -> Authenticator:
        hashed = bcrypt.hashpw(credentials.password.encode(), bcrypt.gensalt(rounds=10))
        return cls({credentials.username: hashed.decode("ascii")})

    def challenge(self) -> str:
        return f'Basic realm="{self.realm}", charset="UTF-8"'

    def check(self, header: str | None) -> str | None:
        """The user name if ``header`` carries valid Basic credentials, else None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        stored = self._users.get(name)
        if not sep or stored is None:
            return None
        memo = hmac.new(self._key, header.encode(), hashlib.sha256).digest()
        with self._lock:
            if memo in self._ok:
                return name
        if not _verify(password, stored):
            return None
        with self._lock:
            self._ok.add(memo)
        return name


def _verify(password: str, stored: str) -> bool:
    if stored.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
        return hmac.compare_digest(digest, stored[5:])
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:
        return False
