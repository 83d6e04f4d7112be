"""The appliance's command line run in this process, as the tests drive it."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from appliance.cli import cli
from appliance.home import Home


def stella(home: Home, *args: str) -> Result:
    """``stella --home HOME ARGS…``: its exit code and output."""
    return CliRunner().invoke(cli, ["--home", str(home.root), *args])


def stella_json(home: Home, *args: str) -> dict[str, Any]:
    """``stella --home HOME --json ARGS…``, which must succeed: its document."""
    done = stella(home, "--json", *args)
    assert done.exit_code == 0, done.output
    out: dict[str, Any] = json.loads(done.stdout)
    return out
