"""The appliance's home directory (shared/DESIGN.md §5) and its creation by ``stella init``.

::

    $STELLA_HOME/
      knowledge.db   SQLite: snapshots, records, match index, KEV, EPSS
      state.db       SQLite: images, scans, findings, VEX, verdicts, audit log
      oci/           OCI image layout: images, referrers, evidence blobs
      keys/          appliance.key (signs VEX and verdicts), appliance.pub
      trust/         trusted roots, one directory per channel, with their history
      inbox/         bundles dropped for import
      quarantine/    refused bundles, each with a .reason file
      staging/       imports in progress (same filesystem, so commits are renames)

The home is private to the appliance user (mode 0700); nothing in it is world-readable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bundles.errors import UsageError
from bundles.keys import KeyType, PrivateKey, PublicKey, passphrase_from_env

MARKER = ".stella-home"
SUBDIRS = ("oci", "keys", "trust", "inbox", "quarantine", "staging")


class HomeNotInitializedError(UsageError):
    """The directory is not an appliance home yet."""


@dataclass(frozen=True, slots=True)
class Home:
    root: Path

    @property
    def knowledge_db(self) -> Path:
        return self.root / "knowledge.db"

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def oci(self) -> Path:
        return self.root / "oci"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def trust(self) -> Path:
        return self.root / "trust"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def appliance_key(self) -> Path:
        return self.keys / "appliance.key"

    @property
    def appliance_pub(self) -> Path:
        return self.keys / "appliance.pub"

    @property
    def initialized(self) -> bool:
        return (self.root / MARKER).is_file()

    def require(self) -> Home:
        """Return self, or explain how to create the home."""
        if not self.initialized:
            raise HomeNotInitializedError(
                f"{self.root} is not an appliance home",
                hint=f"run 'stella --home {self.root} init' first",
            )
        return self

    def init(self, key_type: KeyType = KeyType.ECDSA_P256) -> bool:
        """Create the directories and the appliance key; True when anything was created.

        Idempotent: an existing home keeps its key (a new key would orphan every signature
        made so far).
        """
        created = not self.initialized
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for name in SUBDIRS:
            (self.root / name).mkdir(exist_ok=True)
        if not self.appliance_key.exists():
            key = PrivateKey.generate(key_type)
            key.save(self.appliance_key, passphrase_from_env())
            key.public_key.save(self.appliance_pub)
            created = True
        (self.root / MARKER).write_text("stella appliance home\n")
        return created

    def public_key(self) -> PublicKey:
        return PublicKey.load(self.require().appliance_pub)

    def signing_key(self) -> PrivateKey:
        return PrivateKey.load(self.require().appliance_key, passphrase_from_env())
