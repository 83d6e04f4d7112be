"""Credentials for registries and the challenges that ask for them: a user name and password,
from the command line or from a docker ``config.json`` (its ``auths`` entries; credential
helpers are not run), as an HTTP Basic header; a parsed ``WWW-Authenticate`` header."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bundles.distribution.errors import RegistryAuthError
from bundles.distribution.reference import DOCKER_HUB, DOCKER_HUB_API

_CHALLENGE_PARAM: Final = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password (or identity token) for one registry, and where it came from."""

    username: str
    password: str = field(repr=False)
    source: str = ""  # where they were read, for messages: "FILE auths['HOST']"

    @property
    def described(self) -> str:
        """``user 'NAME'``, and where the credentials came from when that is known."""
        return f"user {self.username!r}" + (f" from {self.source}" if self.source else "")


def default_docker_config() -> Path | None:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``, if the file exists."""
    base = os.environ.get("DOCKER_CONFIG")
    path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    return path if path.is_file() else None


def _auth_keys(registry: str) -> tuple[str, ...]:
    if registry == DOCKER_HUB:
        return (
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            DOCKER_HUB_API,
        )
    return (registry, f"https://{registry}", f"http://{registry}")


def load_docker_credentials(path: Path, registry: str) -> Credentials | None:
    """The credentials ``config.json`` holds for ``registry`` (``auths`` entries only), or None.

    Credential helpers (``credsStore``, ``credHelpers``) run external programs and are not
    used; an entry that needs one is reported so the user can write a plain ``auths`` entry.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RegistryAuthError(
            f"cannot read docker config {path}: {e}",
            hint="fix the file or point --docker-config at another one",
        ) from e
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        auths = {}
    normalized = {k.rstrip("/"): v for k, v in auths.items() if isinstance(v, dict)}
    for key in _auth_keys(registry):
        entry = normalized.get(key.rstrip("/"))
        if entry is None:
            continue
        where = f"{path} auths[{key!r}]"
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = (
                    base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError) as e:
                raise RegistryAuthError(
                    f"{where}: field 'auth' is not base64 of user:password",
                    hint="run docker login again or rewrite the entry",
                ) from e
            if not sep:
                raise RegistryAuthError(f"{where}: field 'auth' has no ':' after the user name")
            return Credentials(user, password, where)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"], where)
        if isinstance(entry.get("identitytoken"), str):
            raise RegistryAuthError(
                f"{where} holds an identity token, which the mirror does not use",
                hint="add 'auth' (base64 user:password) to this entry",
            )
    helpers = doc.get("credHelpers") if isinstance(doc, dict) else None
    if isinstance(helpers, dict) and registry in helpers:
        raise RegistryAuthError(
            f"{path}: credentials for {registry} are kept by credential helper "
            f"{helpers[registry]!r}, which the mirror does not run",
            hint="add an 'auths' entry with 'auth' (base64 user:password) for this registry",
        )
    return None


def basic_auth(credentials: Credentials) -> str:
    """An HTTP Basic ``Authorization`` value (UTF-8, as docker sends it)."""
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header (RFC 7235): scheme and parameters, names
    lower-cased, quoted values unescaped."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): (
                re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
            )
            for m in _CHALLENGE_PARAM.finditer(rest)
        }
        return cls(scheme=scheme.lower(), params=params)
