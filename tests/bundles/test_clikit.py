"""The shared CLI frame: global options, --json output, and errors as one line + exit code."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bundles.clikit import CliContext, Program, default_home, global_options, make_context, pass_ctx
from bundles.errors import ConfigError, StellaError


@click.group(cls=Program, name="prog")
@global_options("prog")
@click.pass_context
def prog(ctx: click.Context, home: Path | None, as_json: bool, debug: bool) -> None:
    ctx.obj = make_context(home, as_json, debug, "prog")


@prog.command()
@pass_ctx
def ok(ctx: CliContext) -> None:
    ctx.emit({"home": str(ctx.home), "count": 2}, lambda: f"home is {ctx.home}")


@prog.command()
def fail() -> None:
    raise StellaError("bundle x.tar.zst: member 'a' is not listed", hint="re-export the bundle")


@prog.command()
def badconfig() -> None:
    raise ConfigError("mirror.toml: source 'x': unknown kind 'nope'")


@prog.command()
def missing() -> None:
    open("/nonexistent/file")  # noqa: SIM115


@prog.command()
@click.pass_context
def gated(ctx: click.Context) -> None:
    ctx.exit(3)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(prog, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_success_text_and_json(tmp_path: Path) -> None:
    code, out, _ = run("--home", str(tmp_path), "ok")
    assert (code, out) == (0, f"home is {tmp_path}\n")
    code, out, _ = run("--home", str(tmp_path), "--json", "ok")
    assert code == 0
    assert json.loads(out) == {"home": str(tmp_path), "count": 2}
    assert out == f'{{"count":2,"home":"{tmp_path}"}}\n'


def test_error_is_one_line_with_exit_code_1() -> None:
    code, out, err = run("fail")
    assert code == 1
    assert out == ""
    assert err == (
        "prog: error: bundle x.tar.zst: member 'a' is not listed (re-export the bundle)\n"
    )


def test_configuration_error_is_a_usage_error() -> None:
    code, _, err = run("badconfig")
    assert code == 2
    assert err == "prog: error: mirror.toml: source 'x': unknown kind 'nope'\n"


def test_os_error_names_the_file() -> None:
    code, _, err = run("missing")
    assert code == 1
    assert err == "prog: error: /nonexistent/file: No such file or directory\n"


def test_debug_shows_the_traceback() -> None:
    code, _, err = run("--debug", "fail")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.endswith(
        "prog: error: bundle x.tar.zst: member 'a' is not listed (re-export the bundle)\n"
    )


def test_usage_errors_exit_2() -> None:
    code, _, err = run("nosuch")
    assert code == 2
    assert "No such command 'nosuch'" in err


def test_commands_choose_their_exit_code() -> None:
    assert run("gated")[0] == 3


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STELLA_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.delenv("STELLA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "stella"


def test_lazy_commands_are_imported_on_first_use() -> None:
    import sys

    group = Program(name="lazy")
    group.add_lazy("dig", "tests.bundles.lazy_target:dig")
    sys.modules.pop("tests.bundles.lazy_target", None)
    assert group.list_commands(click.Context(group)) == ["dig"]
    assert "tests.bundles.lazy_target" not in sys.modules
    result = CliRunner().invoke(group, ["dig"])
    assert (result.exit_code, result.stdout) == (0, "dug\n")
    assert "tests.bundles.lazy_target" in sys.modules
    with pytest.raises(ValueError, match="registered twice"):
        group.add_lazy("dig", "x:y")
