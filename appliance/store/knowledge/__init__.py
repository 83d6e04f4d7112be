"""``knowledge.db``: every imported knowledge snapshot, deduplicated, indexed for matching.

Tables (component ``knowledge``):

- ``records(id, body)``: one row per distinct canonical record line, shared by every dataset
  and snapshot that contains it; ``id`` is the first 64 bits of the line's SHA-256, so linking
  a record needs no lookup (a collision could only corrupt a rebuilt dataset, and every rebuilt
  dataset is checked against its signed digest);
- ``datasets(digest, type, records, size)`` and ``dataset_records(dataset, record_id,
  record)``: a dataset is its ordered membership; because datasets are content-addressed, an
  unchanged dataset costs nothing when the next snapshot arrives, and its exact bytes can be
  rebuilt (``dataset_lines``) to apply a delta or to replay a verdict;
- ``snapshots`` and ``snapshot_datasets``: each imported snapshot (its exact manifest bytes,
  sequence, channel, the bundle it came in) and which dataset it calls what;
- ``blocks(id, ids, body)`` and ``dataset_blocks(dataset, first_id, block)``: the layout of
  table datasets (EPSS: a third of a million small records that change daily), a few hundred
  compressed blocks of consecutive lines instead of a row per record
  (:mod:`appliance.store.blocks`); ``datasets.layout`` says which layout a dataset has;
- ``affected(ecosystem, name, record_id, record)``: the match index, (ecosystem, normalized
  package name) → OSV record; a query joins it to a snapshot's datasets by (dataset,
  record_id), the primary key of the membership table;
- ``advisory_aliases(alias, record_id, record)``: GitHub advisories (``GHSA-…`` records) by
  each id they alias, so a finding known by a CVE reaches GitHub's rating of it;
- ``knowledge_state``: the active snapshot and, per channel, the last accepted sequence.

Loading a dataset verifies what the signed manifest says about it (digest, record count, ids
strictly increasing) before the caller's transaction commits; a failure rolls everything back.
Old snapshots are kept: replaying a verdict needs the snapshot it was made with.
"""

from appliance.store.knowledge.lines import line_batches, split_lines
from appliance.store.knowledge.prune import (
    DEFAULT_RETENTION_DAYS,
    PruneResult,
    install_snapshot,
    prune,
)
from appliance.store.knowledge.schema import (
    BLOCK_TYPES,
    QUERY_CHUNK,
    SCHEMA,
    KnowledgeError,
    Layout,
    Patch,
    SnapshotRow,
)
from appliance.store.knowledge.store import KnowledgeStore

__all__ = [
    "BLOCK_TYPES",
    "DEFAULT_RETENTION_DAYS",
    "QUERY_CHUNK",
    "SCHEMA",
    "KnowledgeError",
    "KnowledgeStore",
    "Layout",
    "Patch",
    "PruneResult",
    "SnapshotRow",
    "install_snapshot",
    "line_batches",
    "prune",
    "split_lines",
]
