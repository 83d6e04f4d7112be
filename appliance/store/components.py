"""``state.db`` index of what each gated image asks of the knowledge: the (ecosystem, normalized
package name) keys its matcher looked up and the CVE ids it read KEV, EPSS and ratings for.

It answers the incremental rescan's one question, "which images hold these packages or cite
these CVEs", in one query, so a knowledge delta re-gates only the images it can change
(appliance/rescan.py). Each image (by manifest digest) has one entry, replaced whenever the
image is indexed again, with the snapshot and stored-VEX digest it was indexed under: an
entry made under another snapshot than the image's latest verdict is stale and the image is
re-gated (a stale entry can only cause extra work, never a skipped change).

Tables (component ``components``):

- ``component_images(subject, snapshot, vex, indexed)``: one row per indexed image;
- ``component_keys(ecosystem, name, subject)``: the package keys, by key;
- ``component_cves(cve, subject)``: the CVE ids, by id;
- ``component_versions(ecosystem, name, subject, version, distro, module)`` (version 2): per
  package key, what the matcher compared its records with (``ProbeRow``), so that a changed
  record selects only the images whose version it affects. ``component_images.probed`` says
  the image's entry has them; an entry made before (0) is selected by key alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from appliance.store.db import Database, Schema

SCHEMA: Final = Schema(
    "components",
    (
        """
        CREATE TABLE component_images (
            subject TEXT PRIMARY KEY,           -- image manifest digest
            snapshot TEXT,                      -- knowledge snapshot the keys were read under
            vex TEXT NOT NULL,                  -- digest of the stored VEX statements then
            indexed TEXT NOT NULL               -- when (RFC 3339)
        ) WITHOUT ROWID;
        CREATE TABLE component_keys (
            ecosystem TEXT NOT NULL,
            name TEXT NOT NULL,                 -- normalized as the match index normalizes it
            subject TEXT NOT NULL REFERENCES component_images(subject) ON DELETE CASCADE,
            PRIMARY KEY (ecosystem, name, subject)
        ) WITHOUT ROWID;
        CREATE INDEX component_keys_by_subject ON component_keys (subject);
        CREATE TABLE component_cves (
            cve TEXT NOT NULL,
            subject TEXT NOT NULL REFERENCES component_images(subject) ON DELETE CASCADE,
            PRIMARY KEY (cve, subject)
        ) WITHOUT ROWID;
        CREATE INDEX component_cves_by_subject ON component_cves (subject);
        """,
        # 2: what each key's records were compared with, so a delta selects by version
        """
        ALTER TABLE component_images ADD COLUMN probed INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE component_versions (
            ecosystem TEXT NOT NULL,
            name TEXT NOT NULL,                 -- normalized, as in component_keys
            subject TEXT NOT NULL REFERENCES component_images(subject) ON DELETE CASCADE,
            version TEXT NOT NULL,              -- the version records were compared with
            distro INTEGER NOT NULL,            -- 1: judged by distribution rules
            module TEXT                         -- module stream rule (appliance.match.source.Probe)
        );
        CREATE INDEX component_versions_by_key ON component_versions (ecosystem, name);
        CREATE INDEX component_versions_by_subject ON component_versions (subject);
        """,
    ),
    postgres=(
        """
        CREATE TABLE component_images (
            subject TEXT COLLATE "C" PRIMARY KEY,
            snapshot TEXT COLLATE "C",
            vex TEXT COLLATE "C" NOT NULL,
            indexed TEXT COLLATE "C" NOT NULL
        );
        CREATE TABLE component_keys (
            ecosystem TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL
                REFERENCES component_images(subject) ON DELETE CASCADE,
            PRIMARY KEY (ecosystem, name, subject)
        );
        CREATE INDEX component_keys_by_subject ON component_keys (subject);
        CREATE TABLE component_cves (
            cve TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL
                REFERENCES component_images(subject) ON DELETE CASCADE,
            PRIMARY KEY (cve, subject)
        );
        CREATE INDEX component_cves_by_subject ON component_cves (subject);
        """,
        """
        ALTER TABLE component_images ADD COLUMN probed INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE component_versions (
            ecosystem TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL
                REFERENCES component_images(subject) ON DELETE CASCADE,
            version TEXT COLLATE "C" NOT NULL,
            distro INTEGER NOT NULL,
            module TEXT COLLATE "C"
        );
        CREATE INDEX component_versions_by_key ON component_versions (ecosystem, name);
        CREATE INDEX component_versions_by_subject ON component_versions (subject);
        """,
    ),
)
# (ecosystem, name) pairs or ids per query: two parameters each stays under SQLite's oldest
# limit of 999 parameters.
_CHUNK: Final = 400


ProbeRow = tuple[str, str, str, bool, str | None]
"""(ecosystem, normalized name, version, distro, module): the fields of
:class:`appliance.match.source.Probe`, what the matcher compared one key's records with."""


def _probe(row: Any) -> ProbeRow:
    module = row[4]
    return (
        str(row[0]),
        str(row[1]),
        str(row[2]),
        bool(row[3]),
        None if module is None else str(module),
    )


@dataclass(frozen=True, slots=True)
class IndexedImage:
    subject: str
    snapshot: str | None
    vex: str
    indexed: str
    probed: bool = False  # its entry records versions (component_versions)


class ComponentIndex:
    """The index of stored images' components; takes and gives rows (strings)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure(SCHEMA)

    def put(
        self,
        subject: str,
        *,
        snapshot: str | None,
        vex: str,
        indexed: str,
        keys: Iterable[tuple[str, str]],
        cves: Iterable[str],
        probes: Iterable[ProbeRow] | None = None,
    ) -> None:
        """Replace the entry of ``subject`` (all of it or nothing, in one transaction).
        ``probes`` None: what each key was compared with is not known (the image is then
        selected by key alone); each probe's key is one of ``keys``."""
        with self.db.transaction("index an image's components") as conn:
            conn.execute("DELETE FROM component_keys WHERE subject = ?", (subject,))
            conn.execute("DELETE FROM component_cves WHERE subject = ?", (subject,))
            conn.execute("DELETE FROM component_versions WHERE subject = ?", (subject,))
            conn.execute(
                "INSERT INTO component_images (subject, snapshot, vex, indexed, probed) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject) DO "
                "UPDATE SET snapshot = excluded.snapshot, vex = excluded.vex, "
                "indexed = excluded.indexed, probed = excluded.probed",
                (subject, snapshot, vex, indexed, 0 if probes is None else 1),
            )
            keys = set(keys)
            if probes is not None:
                wanted = sorted(set(probes))
                keys.update((p[0], p[1]) for p in wanted)
                self.db.bulk_insert(
                    "component_versions",
                    ("ecosystem", "name", "subject", "version", "distro", "module"),
                    [(e, n, subject, v, int(d), m) for e, n, v, d, m in wanted],
                )
            self.db.bulk_insert(
                "component_keys",
                ("ecosystem", "name", "subject"),
                [(e, n, subject) for e, n in sorted(set(keys))],
                ignore_conflicts=True,
            )
            self.db.bulk_insert(
                "component_cves",
                ("cve", "subject"),
                [(c, subject) for c in sorted(set(cves))],
                ignore_conflicts=True,
            )

    def images(self) -> dict[str, IndexedImage]:
        """Every indexed image by subject."""
        rows = self.db.query("SELECT subject, snapshot, vex, indexed, probed FROM component_images")
        return {
            str(r[0]): IndexedImage(
                str(r[0]),
                str(r[1]) if r[1] is not None else None,
                str(r[2]),
                str(r[3]),
                bool(r[4]),
            )
            for r in rows
        }

    def probes_of(self, subject: str) -> frozenset[ProbeRow]:
        rows = self.db.query(
            "SELECT ecosystem, name, version, distro, module FROM component_versions "
            "WHERE subject = ?",
            (subject,),
        )
        return frozenset(_probe(r) for r in rows)

    def probes(self, keys: Iterable[tuple[str, str]]) -> dict[ProbeRow, set[str]]:
        """For the images whose entry records versions and that hold any of ``keys``: each
        distinct probe of those keys -> the images that hold it."""
        found: dict[ProbeRow, set[str]] = {}
        columns = "c.ecosystem, c.name, c.version, c.distro, c.module, c.subject"
        for row in self._by_key(columns, "component_versions", keys):
            found.setdefault(_probe(row), set()).add(str(row[5]))
        return found

    def _by_key(
        self, columns: str, table: str, keys: Iterable[tuple[str, str]], order: str = ""
    ) -> Iterator[Any]:
        """The rows of ``table`` (as ``c``) whose (ecosystem, name) is one of ``keys``,
        ``_CHUNK`` keys a query."""
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            values = ", ".join("(?, ?)" for _ in chunk)
            yield from self.db.query(
                f"WITH w(ecosystem, name) AS (VALUES {values}) "  # noqa: S608
                f"SELECT {columns} FROM w JOIN {table} c "
                f"ON c.ecosystem = w.ecosystem AND c.name = w.name {order}",
                [v for key in chunk for v in key],
            )

    def keys_of(self, subject: str) -> frozenset[tuple[str, str]]:
        rows = self.db.query(
            "SELECT ecosystem, name FROM component_keys WHERE subject = ?", (subject,)
        )
        return frozenset((str(e), str(n)) for e, n in rows)

    def cves_of(self, subject: str) -> frozenset[str]:
        rows = self.db.query("SELECT cve FROM component_cves WHERE subject = ?", (subject,))
        return frozenset(str(c) for (c,) in rows)

    def holders(self, keys: Iterable[tuple[str, str]], cves: Iterable[str] = ()) -> dict[str, str]:
        """The images that hold any of ``keys`` or cite any of ``cves``: subject -> the first
        key or CVE found (as ``ecosystem/name`` or the id), to say why."""
        found: dict[str, str] = {}
        held = self._by_key(
            "c.subject, c.ecosystem, c.name",
            "component_keys",
            keys,
            "ORDER BY c.ecosystem, c.name, c.subject",
        )
        for subject, ecosystem, name in held:
            found.setdefault(str(subject), f"{ecosystem}/{name}")
        ids = sorted(set(cves))
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in part)
            rows = self.db.query(
                f"SELECT subject, cve FROM component_cves WHERE cve IN ({marks}) "  # noqa: S608
                "ORDER BY cve, subject",
                part,
            )
            for subject, cve in rows:
                found.setdefault(str(subject), str(cve))
        return found
