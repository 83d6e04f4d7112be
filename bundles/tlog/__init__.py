"""An append-only transparency log shared by both sides: RFC 6962 / RFC 9162 Merkle hashing
(:mod:`.merkle`), C2SP ``tlog-tiles`` storage (:mod:`.tiles`), C2SP ``signed-note``
checkpoints and ``tlog-cosignature`` witness cosignatures (:mod:`.note`), and the log that
appends crash-safely and proves (:mod:`.log`). docs/transparency.md describes the formats.
"""

from __future__ import annotations

from bundles.errors import StellaError


class TlogError(StellaError):
    """A transparency log, a proof, a checkpoint or a cosignature is malformed or does not
    verify."""
