"""The registry connection options ``stella push``, ``stella serve``, ``stella worker`` and
``stella images load`` share: one set of names and help texts (docs/registry.md), handed to the
command as one :class:`RegistryAccess`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from bundles.distribution.credentials import Credentials

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """How to reach a registry, as the options gave it."""

    user: str | None = None
    password_env: str | None = None
    ca_bundle: str | None = None
    plain_http: bool = False

    def given(self) -> list[str]:
        """The options given, by name (for a source they do not apply to)."""
        return [
            name
            for name, value in (
                ("--user", self.user),
                ("--password-env", self.password_env),
                ("--ca-bundle", self.ca_bundle),
                ("--plain-http", self.plain_http),
            )
            if value
        ]

    def argv(self) -> list[str]:
        """The same options for another process of this command (the password stays in its
        environment variable)."""
        out = []
        if self.user and self.password_env:
            out += ["--user", self.user, "--password-env", self.password_env]
        out += ["--ca-bundle", self.ca_bundle] if self.ca_bundle else []
        return out + (["--plain-http"] if self.plain_http else [])

    def credentials(self) -> Credentials | None:
        """The user and the password read from its variable (None: anonymous)."""
        from appliance.registry.auth import credentials_from_env

        return credentials_from_env(self.user, self.password_env)


def registry_options(scope: str = "") -> Callable[[F], F]:
    """Add ``--user``, ``--password-env``, ``--ca-bundle`` and ``--plain-http``, given to the
    command as ``access`` (a :class:`RegistryAccess`); ``scope`` (e.g. ``"docker://"``) says
    which sources they apply to, where a command has others."""
    lead = f"{scope} only: " if scope else ""

    def said(text: str) -> str:
        first = text.split(" ", 1)[0]
        return lead + (text[0].lower() + text[1:] if lead and not first.isupper() else text)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_access(
            *args: Any,
            user: str | None,
            password_env: str | None,
            ca_bundle: str | None,
            plain_http: bool,
            **kwargs: Any,
        ) -> Any:
            access = RegistryAccess(user, password_env, ca_bundle, plain_http)
            return command(*args, access=access, **kwargs)

        wrapped: Any = with_access
        for option in reversed(
            (
                click.option("--user", default=None, help=said("Registry user name.")),
                click.option(
                    "--password-env",
                    default=None,
                    metavar="VAR",
                    help=said("Environment variable holding the password."),
                ),
                click.option(
                    "--ca-bundle",
                    type=click.Path(dir_okay=False, exists=True),
                    default=None,
                    help=said("CA certificate(s) to trust for the registry's TLS."),
                ),
                click.option(
                    "--plain-http",
                    is_flag=True,
                    help=said("Use plain HTTP (always the case for a loopback registry)."),
                ),
            )
        ):
            wrapped = option(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate
