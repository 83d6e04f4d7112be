"""The appliance's trusted roots, one per channel, with every version it ever accepted.

::

    trust/<channel>/root.json            the current root
    trust/<channel>/history/<N>.json     every accepted version, for audit and replay

A channel is trusted once, deliberately (``stella trust add``), after which its root changes
only by rotation: version N + 1 signed by a threshold of the current and the new root keys
(:meth:`bundles.trust.TrustRoot.check_successor`). Files are replaced by atomic rename.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bundles import limits
from bundles.errors import TrustError, UsageError
from bundles.files import atomic_write
from bundles.limits import Unit
from bundles.trust import TrustRoot

ROTATION_FILES = limits.cap(
    "trust.rotation_files", 64, Unit.COUNT, "the trust root files given to one 'trust rotate'"
)

_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TrustStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _channel_dir(self, channel: str) -> Path:
        if not _CHANNEL.fullmatch(channel):
            raise TrustError(f"channel name {channel!r} is not allowed", hint="use [A-Za-z0-9._-]")
        return self.directory / channel

    def channels(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if (p / "root.json").is_file())

    def get(self, channel: str) -> TrustRoot | None:
        path = self._channel_dir(channel) / "root.json"
        return TrustRoot.load(path) if path.is_file() else None

    def require(self, channel: str) -> TrustRoot:
        root = self.get(channel)
        if root is None:
            trusted = ", ".join(self.channels()) or "none"
            raise TrustError(
                f"no trust root for channel {channel!r} (trusted channels: {trusted})",
                hint="run 'stella trust add trust-root.json' with the mirror's trust root",
            )
        return root

    def all(self) -> list[TrustRoot]:
        return [self.require(c) for c in self.channels()]

    def _store(self, root: TrustRoot) -> None:
        directory = self._channel_dir(root.channel)
        (directory / "history").mkdir(parents=True, exist_ok=True)
        data = root.to_bytes()
        for path in (directory / "history" / f"{root.version}.json", directory / "root.json"):
            atomic_write(path, data, tmp_dir=path.parent)  # synced: a root must survive power loss

    def store_rotation(self, root: TrustRoot) -> None:
        """Persist a root whose succession was already checked (``check_successor``)."""
        current = self.require(root.channel)
        if root.version != current.version + 1:
            raise TrustError(
                f"trust root v{root.version} does not follow v{current.version} of "
                f"channel {root.channel!r}"
            )
        self._store(root)

    def add(self, path: Path, *, now: datetime) -> tuple[TrustRoot, bool]:
        """Trust a channel for the first time. Returns the root and whether it was new."""
        root = TrustRoot.load(path)
        root.check_signed(now=now)
        current = self.get(root.channel)
        if current is not None:
            if current.to_bytes() == root.to_bytes():
                return current, False
            raise UsageError(
                f"{path}: channel {root.channel!r} is already trusted at version {current.version}",
                hint="a changed root must arrive as a rotation: 'stella trust rotate FILE'",
            )
        self._store(root)
        return root, True

    def rotate(self, paths: Sequence[Path], *, now: datetime) -> list[TrustRoot]:
        """Apply new root versions in order; nothing is stored unless every step verifies."""
        limits.check(ROTATION_FILES, len(paths), "trust rotate")
        roots = sorted((TrustRoot.load(p) for p in paths), key=lambda r: r.version)
        if not roots:
            raise UsageError("no trust root files given")
        channels = {r.channel for r in roots}
        if len(channels) != 1:
            raise TrustError(f"rotation files name several channels: {', '.join(sorted(channels))}")
        current = self.require(roots[0].channel)
        chain = [r for r in roots if r.version > current.version]
        if not chain:
            raise TrustError(
                f"trust root for channel {current.channel!r} is already at version "
                f"{current.version}; nothing newer was given"
            )
        previous = current
        for root in chain:
            previous.check_successor(root, now=now)
            previous = root
        for root in chain:
            self._store(root)
        return chain
