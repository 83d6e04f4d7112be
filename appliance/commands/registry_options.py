"""The registry connection options ``stella push``, ``stella worker`` and ``stella images
load`` share: one set of names and help texts (docs/registry.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(scope: str = "") -> Callable[[F], F]:
    """Add ``--user``, ``--password-env``, ``--ca-bundle`` and ``--plain-http``; ``scope``
    (e.g. ``"docker://"``) says which sources they apply to, where a command has others."""
    lead = f"{scope} only: " if scope else ""

    def said(text: str) -> str:
        first = text.split(" ", 1)[0]
        return lead + (text[0].lower() + text[1:] if lead and not first.isupper() else text)

    def decorate(command: F) -> F:
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
            command = option(command)
        return command

    return decorate
