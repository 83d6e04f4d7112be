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
- ``component_cves(cve, subject)``: the CVE ids, by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

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
    ),
)
# (ecosystem, name) pairs or ids per query: two parameters each stays under SQLite's oldest
# limit of 999 parameters.
_CHUNK: Final = 400


@dataclass(frozen=True, slots=True)
class IndexedImage:
    subject: str
    snapshot: str | None
    vex: str
    indexed: str


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
    ) -> None:
        """Replace the entry of ``subject`` (all of it or nothing, in one transaction)."""
        with self.db.transaction("index an image's components") as conn:
            conn.execute("DELETE FROM component_keys WHERE subject = ?", (subject,))
            conn.execute("DELETE FROM component_cves WHERE subject = ?", (subject,))
            conn.execute(
                "INSERT INTO component_images VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO "
                "UPDATE SET snapshot = excluded.snapshot, vex = excluded.vex, "
                "indexed = excluded.indexed",
                (subject, snapshot, vex, indexed),
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
        rows = self.db.query("SELECT subject, snapshot, vex, indexed FROM component_images")
        return {
            str(r[0]): IndexedImage(
                str(r[0]), str(r[1]) if r[1] is not None else None, str(r[2]), str(r[3])
            )
            for r in rows
        }

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
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            values = ", ".join("(?, ?)" for _ in chunk)
            rows = self.db.query(
                f"WITH w(ecosystem, name) AS (VALUES {values}) "  # noqa: S608
                "SELECT c.subject, c.ecosystem, c.name FROM w JOIN component_keys c "
                "ON c.ecosystem = w.ecosystem AND c.name = w.name "
                "ORDER BY c.ecosystem, c.name, c.subject",
                [v for key in chunk for v in key],
            )
            for subject, ecosystem, name in rows:
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
