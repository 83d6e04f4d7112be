"""The fleet: scan and gate jobs in a queue kept in PostgreSQL, and the workers that take them
(``stella worker``, ``stella rescan --queue``, ``stella queue status``; docs/scale-out.md).

:mod:`appliance.fleet.queue` reaches the queue (``STELLA_DATABASE_URL``), keeps its schema
and names the job kinds; :mod:`appliance.fleet.worker` is the worker loop and the jobs' bodies,
which call :mod:`appliance.rescan` for each image.

This module itself imports neither the queue library nor the PostgreSQL driver (the
``postgres`` extra): the command line lists and documents the queue's commands on an
embedded appliance without them, and :func:`require_extra` says what is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Final

from bundles.errors import StellaError

DATABASE_ENV: Final = "STELLA_DATABASE_URL"
DEFAULT_QUEUE: Final = "stella"


class QueueError(StellaError):
    """The queue's database is not named, cannot be reached, or holds something else."""


def require_extra() -> None:
    """Refuse, in one line, when the scale-out libraries are not installed."""
    missing = [m for m in ("psycopg", "procrastinate") if importlib.util.find_spec(m) is None]
    if missing:
        raise QueueError(
            f"the job queue needs {' and '.join(missing)}, which this installation lacks",
            hint="install the appliance with its 'postgres' extra (docs/scale-out.md)",
        )
