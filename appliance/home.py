"""The appliance's home directory (shared/DESIGN.md §5) and its creation by ``stella init``.

::

    $STELLA_HOME/
      knowledge.db   SQLite: snapshots, records, match index, KEV, EPSS
      state.db       SQLite: images, scans, findings, VEX, verdicts, audit log
      oci/           OCI image layout: images, referrers, evidence blobs
      keys/          appliance.key (signs VEX and verdicts), appliance.pub
      config.json    the home's settings: the signer URI when the key lives in a token
      trust/         trusted roots, one directory per channel, with their history
      inbox/         bundles dropped for import
      quarantine/    refused bundles, each with a .reason file
      staging/       imports in progress (same filesystem, so commits are renames)
      tenants/NAME/  one tenant (``stella --tenant NAME``): a home of its own, laid out as above
                     but for knowledge.db, which it shares read only (appliance/tenancy.py)

The home is private to the appliance user (mode 0700); nothing in it is world-readable.

The appliance key is either the file ``keys/appliance.key`` (the default) or a key inside a
PKCS#11 token, chosen once by ``stella init --signer pkcs11:…`` and recorded as that URI in
``config.json`` (never the PIN: see docs/keys.md). Either way ``keys/appliance.pub`` holds the
public key, so verifying never needs the token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from appliance import tenancy
from bundles import canonical
from bundles.errors import CanonicalJSONError, ConfigError, UsageError
from bundles.files import atomic_write
from bundles.keys import KeyType, PrivateKey, PublicKey, passphrase_from_env
from bundles.pkcs11_uri import Pkcs11KeyMissingError, is_pkcs11_uri, parse_pkcs11_uri
from bundles.signer import Signer, close_signer, generate_signer, load_signer

MARKER = ".stella-home"
SUBDIRS = ("oci", "keys", "trust", "inbox", "quarantine", "staging")
CONFIG_LIMIT: Final = 64 << 10
#: Where a home's stores live when not in its embedded SQLite files (appliance.store reads them;
#: the transparency log, below the store, checks them too).
DATABASE_URL_ENV: Final = "STELLA_DATABASE_URL"
DATABASE_URL_SETTING: Final = "databaseUrl"


class HomeNotInitializedError(UsageError):
    """The directory is not an appliance home yet."""


class SignerMismatchError(UsageError):
    """The signer asked for is not the one the home signs with."""


@dataclass(frozen=True, slots=True)
class Home:
    """An appliance home, or one tenant of it.

    ``root`` is the directory everything of this home (or tenant) lives in: a tenant's root
    is ``BASE/tenants/NAME``, so every store that takes its path from here is the tenant's
    own, and only :attr:`knowledge_db` reaches the shared store. ``tenant`` is recognised from
    that layout when not given (``Home(BASE/tenants/NAME)`` of a home ``BASE`` is tenant NAME),
    so a home passed by path keeps its tenant.
    """

    root: Path
    tenant: str | None = None

    def __post_init__(self) -> None:
        if self.tenant is not None:
            tenancy.check_name(self.tenant)
            if self.root.name != self.tenant or self.root.parent.name != tenancy.TENANTS_DIR:
                raise ValueError(f"{self.root} is not the directory of tenant {self.tenant!r}")
            return
        parent = self.root.parent
        if (
            parent.name == tenancy.TENANTS_DIR
            and tenancy.NAME_PATTERN.fullmatch(self.root.name)
            and (parent.parent / MARKER).is_file()
        ):
            object.__setattr__(self, "tenant", self.root.name)

    @classmethod
    def of(cls, base: Path, tenant: str | None) -> Home:
        """The home ``base``, or its tenant ``tenant`` (a name checked strictly)."""
        if tenant is None:
            return cls(base)
        name = tenancy.check_name(tenant)
        return cls(base / tenancy.TENANTS_DIR / name, name)

    @property
    def base(self) -> Path:
        """The home this tenant belongs to (the home itself when it is no tenant)."""
        return self.root.parent.parent if self.tenant is not None else self.root

    @property
    def boundary(self) -> tenancy.Boundary:
        """What a process acting for this home (or tenant) may reach."""
        return tenancy.Boundary.of(self.base, self.tenant)

    @property
    def pg_schema(self) -> str | None:
        """The PostgreSQL schema of this tenant's state store (``tenant_<name>``, valid unquoted
        and returned by :func:`appliance.tenancy.quote_identifier` quoted for DDL), or None
        for the home itself, whose state is in the schema ``state``
        (:func:`appliance.store.open_state`)."""
        return tenancy.pg_schema(self.tenant) if self.tenant is not None else None

    @property
    def queue_schema(self) -> str:
        """The PostgreSQL schema of the job queue this home (or tenant) enqueues into and its
        workers take from: ``tenant_<name>_queue`` for a tenant, ``stella_queue`` for the home
        itself (:func:`appliance.tenancy.queue_schema`)."""
        return tenancy.queue_schema(self.tenant)

    @property
    def shared_knowledge_db(self) -> Path:
        """The home's knowledge store, which every tenant reads."""
        return self.base / tenancy.KNOWLEDGE_FILE

    @property
    def own_knowledge_db(self) -> Path:
        """The knowledge store this home (or tenant) writes when it imports a bundle."""
        return self.root / tenancy.KNOWLEDGE_FILE

    @property
    def knowledge_db(self) -> Path:
        """The knowledge store this home reads: a tenant's own once it has imported a bundle
        of its own, else the shared one (read only: appliance/tenancy.py)."""
        if self.tenant is not None and not self.own_knowledge_db.is_file():
            return self.shared_knowledge_db
        return self.own_knowledge_db

    @property
    def tenants_dir(self) -> Path:
        return self.base / tenancy.TENANTS_DIR

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
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def initialized(self) -> bool:
        if self.tenant is not None:
            return (self.root / tenancy.TENANT_MARKER).is_file() and not self.root.is_symlink()
        return (self.root / MARKER).is_file()

    def require(self) -> Home:
        """Return self, or explain how to create the home."""
        if self.tenant is not None and not self.initialized:
            raise tenancy.TenantError(
                f"tenant {self.tenant!r} does not exist in {self.base}",
                hint=f"create it with 'stella --home {self.base} --tenant {self.tenant} init', "
                "or list the tenants with 'stella tenants list'",
            )
        if not self.initialized:
            raise HomeNotInitializedError(
                f"{self.root} is not an appliance home",
                hint=f"run 'stella --home {self.root} init' first",
            )
        return self

    def init(self, key_type: KeyType = KeyType.ECDSA_P256, *, signer: str | None = None) -> bool:
        """Create the directories and the appliance key; True when anything was created.

        With ``signer`` (a ``pkcs11:`` URI) the key lives in that token: the key the URI
        names is used when it exists, else generated there; the URI is recorded in
        ``config.json``. Idempotent: an existing home keeps its key (a new key would orphan
        every signature made so far), so asking for another signer is refused.
        """
        if self.tenant is not None:
            self._make_tenant_dir()
        current = self.signer_reference() if self.config.is_file() else None
        if signer is not None:
            self._check_new_signer(signer, current)
        created = not self.initialized
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for name in SUBDIRS:
            (self.root / name).mkdir(exist_ok=True)
        if signer is not None and current is None:
            self._adopt_token_key(signer)
            created = True
        elif current is None and not self.appliance_key.exists():
            key = PrivateKey.generate(key_type)
            self.claim_key(key.public_key)
            key.save(self.appliance_key, passphrase_from_env())
            key.public_key.save(self.appliance_pub)
            self._start_ring()
            created = True
        if self.tenant is not None:
            (self.root / tenancy.TENANT_MARKER).write_text(f"{self.tenant}\n")
        else:
            (self.root / MARKER).write_text("stella appliance home\n")
        return created

    def _make_tenant_dir(self) -> None:
        """Create ``tenants/NAME`` (mode 0700) in an existing home; a symbolic link standing
        in its place is refused, never followed."""
        if not (self.base / MARKER).is_file():
            raise HomeNotInitializedError(
                f"{self.base} is not an appliance home: a tenant lives in one",
                hint=f"the home's administrator creates it first: 'stella --home {self.base} init'",
            )
        for directory in (self.tenants_dir, self.root):
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                raise tenancy.TenantBoundaryError(
                    f"{directory}: is not a plain directory (a symbolic link or a file)",
                    hint="remove it; a tenant's directory is created by 'stella init'",
                )
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)

    def _check_new_signer(self, signer: str, current: str | None) -> None:
        if not is_pkcs11_uri(signer):
            raise UsageError(
                f"--signer {signer!r} is not a pkcs11: URI",
                hint="leave --signer out to keep the key in keys/appliance.key",
            )
        parse_pkcs11_uri(signer)  # a malformed URI is refused before anything is created
        if current is not None and current != signer:
            raise SignerMismatchError(
                f"{self.config}: this home already signs with {current}",
                hint="a home's key is chosen once, at init; use a new home for another key",
            )
        if current is None and self.appliance_key.exists():
            raise SignerMismatchError(
                f"{self.root} already signs with the key file {self.appliance_key}",
                hint="a home's key is chosen once, at init; use a new home for a token key",
            )

    def claim_key(self, key: PublicKey) -> None:
        """A tenant's key must be its own: refuse one another tenant (or the home's
        administrator) already signs with (:func:`appliance.tenancy.claim_key`)."""
        if self.tenant is None:
            return
        admin_pub = self.base / tenancy.ADMIN_PUB
        administrator = PublicKey.load(admin_pub).keyid if admin_pub.is_file() else None
        tenancy.claim_key(self.base, self.tenant, key.keyid, administrator=administrator)

    def _adopt_token_key(self, signer: str) -> None:
        """Open (or generate) the token key, then record its public key and the URI."""
        try:
            opened = load_signer(signer)
        except Pkcs11KeyMissingError:
            opened = generate_signer(signer)
        try:
            self.claim_key(opened.public_key)
            opened.public_key.save(self.appliance_pub)
        finally:
            close_signer(opened)
        self.write_settings({**self.settings(), "signer": signer})
        self._start_ring()

    def _start_ring(self) -> None:
        from appliance import keyring

        keyring.start_ring(self, PublicKey.load(self.appliance_pub))

    def settings(self) -> dict[str, Any]:
        """The settings ``config.json`` holds (empty when there is none)."""
        try:
            with open(self.config, "rb") as fh:
                data = fh.read(CONFIG_LIMIT + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ConfigError(f"{self.config}: cannot read: {e.strerror}") from e
        try:
            settings = canonical.loads(data, limit=CONFIG_LIMIT, source=str(self.config))
        except CanonicalJSONError as e:
            raise ConfigError(e.message, hint="restore config.json from a backup") from e
        if not isinstance(settings, dict):
            raise ConfigError(
                f"{self.config}: must be a JSON object", hint="restore config.json from a backup"
            )
        return settings

    def write_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace ``config.json`` atomically (mode 0600)."""
        atomic_write(self.config, canonical.dumps(dict(settings)) + b"\n", mode=0o600)

    def signer_reference(self) -> str | None:
        """The signer URI ``config.json`` records, or ``None`` for the key file."""
        signer = self.settings().get("signer")
        if signer is not None and not (isinstance(signer, str) and is_pkcs11_uri(signer)):
            raise ConfigError(
                f"{self.config}: field 'signer' must be a pkcs11: URI, got {signer!r}",
                hint="restore config.json from a backup",
            )
        return signer

    def public_key(self) -> PublicKey:
        return PublicKey.load(self.require().appliance_pub)

    @property
    def key_ring_file(self) -> Path:
        return self.keys / "keyring.json"

    def signing_key(self, *, at: datetime | None = None, now: datetime | None = None) -> Signer:
        """The appliance's signer at ``now`` (the wall clock by default): the key whose
        window holds ``now`` in the key ring (docs/keys.md), switched to when its time has
        come. With ``at`` (a verdict's evaluation time, which is its signing time), that
        time must fall in the key's window too."""
        from appliance import keyring  # the ring module uses Home: imported when used

        return keyring.active_signer(self.require(), at=at, now=now)

    def open_signer(self, reference: str | None, expected: PublicKey) -> Signer:
        """Open the token key ``reference`` names, else the key file; it must be ``expected``."""
        if reference is None:
            signer: Signer = PrivateKey.load(self.appliance_key, passphrase_from_env())
        else:
            signer = load_signer(reference)
        if signer.keyid != expected.keyid:
            where = reference or str(self.appliance_key)
            close_signer(signer)
            raise SignerMismatchError(
                f"{where}: the key {signer.keyid[:16]} is not the appliance key "
                f"{expected.keyid[:16]} the key ring names",
                hint="insert the appliance's own token, or correct the URI in config.json",
            )
        return signer


def database_url(home: Home) -> str | None:
    """The PostgreSQL URL the home's stores live in, or None for the embedded SQLite files:
    ``STELLA_DATABASE_URL`` when set (not empty), else the ``databaseUrl`` setting of the
    home's (or the tenant's own) ``config.json``. The stores open by it; the transparency log,
    below them, asks it whether its home shares them."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    # A tenant reads its own config.json: the home's is outside what a tenant may open
    # (appliance/tenancy.py), so a site with tenants names the database in the environment.
    setting = home.settings().get(DATABASE_URL_SETTING)
    if setting is None:
        return None
    if not isinstance(setting, str) or not setting.strip():
        raise ConfigError(
            f"{home.config}: {DATABASE_URL_SETTING} must be a postgresql:// URL, got {setting!r}",
            hint="correct config.json, or remove the setting to use the embedded stores",
        )
    return setting.strip()
