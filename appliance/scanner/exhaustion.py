"""Running out of a process resource is not a fact about the file being read.

A scan runs under bounds (docs/scale-out.md, "Bounded scan jobs"): when its process passes
one, the allocation, the write or the open that passed it fails. Code that turns a file's
failure into an unknown (an analyzer's parser error, an unreadable file) must let these
through, or a scan stopped by its bound would look like a finished scan with one more
unknown. :func:`exhausted` tells them apart; :class:`CpuBoundHit` is what the scan's process
raises when its CPU time runs out (a ``BaseException``, so no ``except Exception`` keeps it).
"""

from __future__ import annotations

import errno
from typing import Final

#: errno values that mean the process ran out of something, not that the file is bad.
RESOURCE_ERRNOS: Final = frozenset({errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.ENOMEM})


class CpuBoundHit(BaseException):
    """The scan's process passed its CPU-time bound (``SIGXCPU``)."""


def exhausted(error: BaseException) -> bool:
    """Whether ``error`` is the process running out of memory, CPU time, file size or file
    descriptors (and so must end the scan, not become an unknown)."""
    if isinstance(error, MemoryError | CpuBoundHit):
        return True
    return isinstance(error, OSError) and error.errno in RESOURCE_ERRNOS
