"""Distribution release names both sides agree on: which codename is which release.

The mirror names the ecosystem of a Debian tracker entry by its release codename
(``bookworm`` → ``Debian:12``); the appliance reads an image's ``/etc/os-release``, which may
give only the codename, and must land on the same ecosystem. One table for both.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: Debian release codename -> the version used in the ``Debian:<version>`` ecosystem. Releases
#: before 7 are written with their ``.0``/``.1`` point as in ``/etc/debian_version`` of the
#: time; sid is ``Debian:unstable`` (it never gets a number); experimental is not a release.
DEBIAN_CODENAMES: Final = MappingProxyType(
    {
        "buzz": "1.1",
        "rex": "1.2",
        "bo": "1.3",
        "hamm": "2.0",
        "slink": "2.1",
        "potato": "2.2",
        "woody": "3.0",
        "sarge": "3.1",
        "etch": "4.0",
        "lenny": "5.0",
        "squeeze": "6.0",
        "wheezy": "7",
        "jessie": "8",
        "stretch": "9",
        "buster": "10",
        "bullseye": "11",
        "bookworm": "12",
        "trixie": "13",
        "forky": "14",
        "duke": "15",
        "sid": "unstable",
    }
)
