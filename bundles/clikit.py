"""What the two command-line programs share: global options, output, and the one place where
errors become an exit code.

Both ``stella`` and ``stella-mirror`` are ``PROG [--home DIR] [--json] [--debug] COMMAND ...``.
Commands return nothing and report through :meth:`CliContext.emit`, which prints either the
human text or one JSON object on stdout. Every :class:`~bundles.errors.StellaError` that
escapes a command is printed as one line on stderr (with the traceback under ``--debug``)
and turned into its exit code by :func:`run`.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from bundles import canonical
from bundles.errors import StellaError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def default_home() -> Path:
    """``$STELLA_HOME``, else ``$XDG_DATA_HOME/stella``, else ``~/.local/share/stella``."""
    env = os.environ.get("STELLA_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "stella"


@dataclass(slots=True)
class CliContext:
    """State shared by every command of one invocation."""

    home: Path
    json: bool = False
    debug: bool = False
    prog: str = "stella"
    exit_code: int = EXIT_OK
    extra: dict[str, Any] = field(default_factory=dict)

    def emit(self, data: Mapping[str, Any], text: str | Callable[[], str] | None = None) -> None:
        """Report a command's result: ``data`` as one JSON object under ``--json``, else
        ``text`` (or a callable producing it) for a human."""
        if self.json:
            click.echo(canonical.dumps(dict(data)).decode())
            return
        if text is None:
            return
        click.echo(text() if callable(text) else text)

    def info(self, message: str) -> None:
        """Progress for a human on stderr; silent under ``--json``."""
        if not self.json:
            click.echo(message, err=True)


pass_ctx = click.make_pass_decorator(CliContext)


def global_options(prog: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a click group's callback with ``--home``, ``--json`` and ``--debug``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--debug", is_flag=True, help="Show tracebacks and diagnostic detail on errors."
        )(fn)
        fn = click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON object on stdout."
        )(fn)
        fn = click.option(
            "--home",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Data directory [default: $STELLA_HOME, else ~/.local/share/stella].",
        )(fn)
        return fn

    return decorate


def make_context(home: Path | None, as_json: bool, debug: bool, prog: str) -> CliContext:
    return CliContext(
        home=(home or default_home()).absolute(), json=as_json, debug=debug, prog=prog
    )


class Program(click.Group):
    """A top-level command group whose ``main`` is the one place errors become exit codes.

    Console scripts and click's ``CliRunner`` both enter through :meth:`main`, so tests see
    exactly the lines and exit codes a user sees. Commands registered with :meth:`add_lazy`
    are imported only when they run (or when help lists them), so a command pays only for the
    libraries it uses.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``module:attribute`` as command ``name``, imported on first use."""
        if name in self._lazy or name in self.commands:
            raise ValueError(f"command {name!r} is registered twice")
        self._lazy[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self._lazy.pop(cmd_name, None)
        if target is not None:
            module, _, attribute = target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        prog = prog_name or self.name or "stella"
        argv = list(args) if args is not None else sys.argv[1:]
        debug = "--debug" in argv
        code = EXIT_OK
        try:
            result = super().main(
                args=argv, prog_name=prog, complete_var=complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else EXIT_OK
        except StellaError as e:
            if debug:
                traceback.print_exc()
            click.echo(f"{prog}: error: {e.diagnostics()}", err=True)
            code = e.exit_code
        except click.exceptions.Abort:
            click.echo(f"{prog}: aborted", err=True)
            code = EXIT_ERROR
        except click.ClickException as e:
            e.show()
            code = e.exit_code
        except click.exceptions.Exit as e:
            code = e.exit_code
        except KeyboardInterrupt:
            click.echo(f"{prog}: interrupted", err=True)
            code = 130
        except OSError as e:
            if debug:
                traceback.print_exc()
            where = f" {e.filename}:" if e.filename else ""
            click.echo(f"{prog}: error:{where} {e.strerror or e}", err=True)
            code = EXIT_ERROR
        sys.exit(code)
