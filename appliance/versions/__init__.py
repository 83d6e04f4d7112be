"""Version schemes for matching: one module per ecosystem's ordering rules, one interface.

``scheme_for("dpkg").parse("1:2.0-1")`` gives a :class:`Version` that compares by a key
computed once; ``scheme_for_ecosystem("Debian:12")`` picks the scheme for an OSV ecosystem;
:func:`affected` evaluates an OSV range's events. Pure code: no I/O.
"""

from appliance.versions.interface import (
    InvalidRange,
    InvalidVersion,
    UnknownScheme,
    Version,
    VersionError,
    VersionScheme,
)
from appliance.versions.osv_range import Event, EventKind, PreparedRange, affected, prepare
from appliance.versions.schemes import (
    scheme_for,
    scheme_for_ecosystem,
    scheme_names,
    supported_ecosystems,
)

__all__ = [
    "Event",
    "EventKind",
    "InvalidRange",
    "InvalidVersion",
    "PreparedRange",
    "UnknownScheme",
    "Version",
    "VersionError",
    "VersionScheme",
    "affected",
    "prepare",
    "scheme_for",
    "scheme_for_ecosystem",
    "scheme_names",
    "supported_ecosystems",
]
