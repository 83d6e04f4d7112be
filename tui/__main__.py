"""``python -m tui --home DIR``: what ``stella tui`` runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.console.backend import HomeConsole
from appliance.home import Home
from appliance.tenancy import confine
from bundles.errors import StellaError
from tui.app import StellaApp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stella tui", description="The operators' terminal UI.")
    parser.add_argument("--home", type=Path, required=True, help="the appliance home")
    args = parser.parse_args(argv)
    try:
        home = Home(args.home)  # a tenant's directory is that tenant (appliance/tenancy.py)
        if home.tenant is not None or home.tenants_dir.is_dir():
            confine(home.boundary)
        service = HomeConsole(home)
    except StellaError as e:
        print(f"stella tui: {e.diagnostics()}", file=sys.stderr)
        return 1
    app = StellaApp(service)
    if home.tenant is not None:  # who the operator acts for, always in view
        app.title = f"Stella Ops · tenant {home.tenant}"
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
