"""The manifest graph of a layout and its on-disk cache (the referrers sidecar).

An OCI layout has no standard place to look up referrers, and reading every manifest for every
query does not scale. The graph records, for each manifest or index reachable from
``index.json``, what it points at (``children``) and, for referrers, its ``subject``,
``artifactType`` and annotations. It is a pure function of ``index.json`` and the immutable
manifest blobs, so it is cached in ``.stella/manifests.json`` together with the digest of the
``index.json`` bytes it was computed from: when another tool rewrites ``index.json`` the digests
differ and the graph is refreshed, re-reading only the manifests it has not seen (a manifest's
entry never goes stale, its digest fixes its content). See docs/oci-layout.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.oci.descriptor import Descriptor
from bundles.oci.manifest import Manifest, referrer_descriptor

CACHE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Node:
    """One manifest or index in the graph."""

    descriptor: Descriptor
    children: tuple[Descriptor, ...]
    subject: Digest | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        annotations = dict(self.annotations)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise TypeError("annotations must map strings to strings")
        object.__setattr__(self, "annotations", MappingProxyType(annotations))

    @classmethod
    def of(cls, descriptor: Descriptor, manifest: Manifest) -> Node:
        bare = descriptor.bare()
        if manifest.subject is None:
            return cls(descriptor=bare, children=manifest.children())
        ref = referrer_descriptor(bare, manifest)
        return cls(
            descriptor=bare,
            children=manifest.children(),
            subject=manifest.subject.digest,
            artifact_type=ref.artifact_type,
            annotations=ref.annotations,
        )

    def referrer(self) -> Descriptor:
        """This node as the referrers API lists it."""
        return Descriptor(
            media_type=self.descriptor.media_type,
            digest=self.descriptor.digest,
            size=self.descriptor.size,
            annotations=self.annotations,
            artifact_type=self.artifact_type,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.descriptor.media_type,
            "size": self.descriptor.size,
            "children": [c.to_dict() for c in self.children],
        }
        if self.subject is not None:
            out["subject"] = str(self.subject)
            out["annotations"] = dict(self.annotations)
            if self.artifact_type is not None:
                out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_dict(cls, digest: Digest, value: Any) -> Node:
        subject = value.get("subject")
        return cls(
            descriptor=Descriptor(value["mediaType"], digest, value["size"]),
            children=tuple(Descriptor.from_dict(c) for c in value["children"]),
            subject=None if subject is None else Digest.parse(subject),
            artifact_type=value.get("artifactType"),
            annotations=value.get("annotations", {}),
        )


@dataclass(frozen=True, slots=True)
class Graph:
    """The manifests reachable from one version of ``index.json``."""

    index_digest: Digest
    nodes: Mapping[Digest, Node]
    missing: frozenset[Digest] = frozenset()
    # subject -> its referrers sorted by digest, made on the first question (a rescan asks
    # for each of thousands of images)
    _by_subject: dict[Digest, tuple[Node, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def referrers(self, subject: Digest) -> tuple[Node, ...]:
        """The nodes whose subject is ``subject``, sorted by digest."""
        by_subject = self._by_subject
        if by_subject is None:
            found: dict[Digest, list[Node]] = {}
            for node in self.nodes.values():
                if node.subject is not None:
                    found.setdefault(node.subject, []).append(node)
            by_subject = {
                s: tuple(sorted(nodes, key=lambda n: n.descriptor.digest))
                for s, nodes in found.items()
            }
            object.__setattr__(self, "_by_subject", by_subject)
        return by_subject.get(subject, ())

    def to_bytes(self) -> bytes:
        """The canonical JSON of ``{"index", "manifests": {digest: node}, "version"}``, put
        together from each node's canonical bytes (keys in canonical order: ``index`` <
        ``manifests`` < ``version``, digests are ASCII); a node serialized by the previous call
        is not serialized again."""
        fresh: dict[Digest, tuple[Node, bytes]] = {}
        parts = []
        for digest in sorted(self.nodes, key=str):
            node = self.nodes[digest]
            known = _SERIALIZED.get(digest)
            if known is not None and (known[0] is node or known[0] == node):
                body = known[1]
            else:
                body = canonical.dumps(node.to_dict())
            fresh[digest] = (node, body)
            parts.append(b'"%s":%s' % (str(digest).encode(), body))  # a digest needs no escape
        _SERIALIZED.clear()
        _SERIALIZED.update(fresh)
        return b"".join(
            (
                b'{"index":',
                canonical.dumps(str(self.index_digest)),
                b',"manifests":{',
                b",".join(parts),
                b'},"version":',
                canonical.dumps(CACHE_VERSION),
                b"}",
            )
        )


_SERIALIZED: dict[Digest, tuple[Node, bytes]] = {}
"""Each node of the graph :meth:`Graph.to_bytes` last wrote, with its canonical bytes: written
again after one referrer was added, the graph serializes that one node only."""


def load_cache(data: bytes) -> Graph | None:
    """Parse a cache file; a cache that cannot be read is as good as no cache (None).

    The cache only ever saves work: anything wrong with it means recomputing from
    ``index.json`` and the manifests, never a wrong answer from a damaged file.
    """
    try:
        doc = canonical.loads(data, source="manifest graph cache")
        if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION:
            return None
        nodes = {
            Digest.parse(key): Node.from_dict(Digest.parse(key), value)
            for key, value in doc["manifests"].items()
        }
        return Graph(index_digest=Digest.parse(doc["index"]), nodes=MappingProxyType(nodes))
    except (StellaError, KeyError, TypeError, AttributeError, ValueError):
        return None
