"""The knowledge store: one class over ``knowledge.db`` made of its parts."""

from __future__ import annotations

from appliance.store.knowledge.queries import Queries


class KnowledgeStore(Queries):
    """``knowledge.db``: datasets (:mod:`.datasets`), the snapshot registry (:mod:`.snapshots`)
    and the queries of matching (:mod:`.queries`), over one open database (:mod:`.schema`)."""
