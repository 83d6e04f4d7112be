"""The appliance's SQLite stores (shared/DESIGN.md §5).

``state.db`` holds what the appliance decided and about what: images, scans, findings, VEX,
verdicts and the audit log; ``knowledge.db`` holds the imported knowledge snapshots. Each store
is a module here that owns its tables through a :class:`~appliance.store.db.Schema`; only these
modules import ``sqlite3`` (``scripts/check_layers.py``).
"""

from __future__ import annotations

from appliance.home import Home
from appliance.store.db import Database


def open_state(home: Home) -> Database:
    """Open the home's ``state.db`` (the home must have been created by ``stella init``)."""
    return Database.open(home.require().state_db)
