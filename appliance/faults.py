"""Fault points, for tests only: kill this process at a named step of a command.

``STELLA_FAULT=import.after-blobs stella import B`` makes the import kill itself with SIGKILL
(as ``kill -9`` or a power cut would) when it reaches that step, so a test can interrupt a
command at every step deterministically, instead of guessing with timers, and then check that
nothing stored is lost or half-written and that running the command again works.

Unless ``STELLA_FAULT`` is set this does nothing (one environment lookup per step). It is not an
operator's setting: never set it on an appliance. The steps are listed in :data:`STEPS` and in
docs/operations.md ("Fault points").
"""

from __future__ import annotations

import os
import signal
from typing import Final

ENV: Final = "STELLA_FAULT"

STEPS: Final = {
    "import.after-verify": "the bundle's statement has verified; nothing is written yet",
    "import.blob-written": "an image blob is written to a temporary file, not yet in the store",
    "import.after-blobs": "every image blob is in the store; no tag, knowledge not committed",
    "import.before-commit": "tags are written; the knowledge transaction is not committed",
    "import.after-commit": "the snapshot is committed and active; no audit record yet",
    "gate.after-scan": "the image is scanned (and the scan audited); nothing of the gate stored",
    "gate.after-log": "the verdict is signed and in the transparency log; nothing attached",
    "gate.after-attach": (
        "the signed verdict's referrer is written to temporary files (they enter the store "
        "with the batch's other blobs); no verdict row or record"
    ),
    "gate.before-record": "every referrer is attached; the verdict is not recorded",
    "gate.after-record": "the verdict and its audit record are committed",
    "rescan.decide": (
        "the rescan is deciding an image, nothing of it stored (in a worker process, only "
        "the worker dies)"
    ),
    "rescan.after-batch": "a batch of the rescan's images is recorded; the next batch not begun",
    "vex.after-sign": "the statement is signed and in the transparency log; nothing stored",
    "vex.before-commit": "the statement is added inside the transaction, not committed",
    "vex.after-commit": "the statement and its audit record are committed",
}


def fault(step: str, *, subject: str | None = None) -> None:
    """Die here, at once and without cleaning up, if ``STELLA_FAULT`` names ``step`` (or
    ``STEP@SUBJECT``: only where the step is reached for ``subject``, an image say)."""
    wanted = os.environ.get(ENV)
    if wanted is None:
        return
    if step not in STEPS:
        raise ValueError(f"unknown fault point {step!r}")
    if wanted == step or (subject is not None and wanted == f"{step}@{subject}"):
        os.kill(os.getpid(), signal.SIGKILL)
