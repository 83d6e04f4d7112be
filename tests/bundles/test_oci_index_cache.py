"""What a process keeps of a layout between updates: the parsed ``index.json`` and the manifest
graph, so adding one referrer to a store of thousands checks and reads only what it adds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bundles import canonical
from bundles.errors import OCILayoutError
from bundles.oci import Descriptor, OCILayout
from bundles.oci import layout as layout_module
from bundles.oci.graph import Graph
from bundles.oci.graph import load_cache as graph_cache
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from tests.bundles.oci_helpers import attach, build_image
from tests.bundles.test_oci_referrers import CountingLayout


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout.init(tmp_path / "layout")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times the whole index was checked and the graph cache file parsed."""
    calls = {"descriptors": 0, "load_cache": 0}
    descriptors = OCILayout._descriptors

    def counting_descriptors(self: OCILayout, doc: dict[str, Any]) -> tuple[Descriptor, ...]:
        calls["descriptors"] += 1
        return descriptors(self, doc)

    def counting_load_cache(data: bytes) -> Graph | None:
        calls["load_cache"] += 1
        return graph_cache(data)

    monkeypatch.setattr(OCILayout, "_descriptors", counting_descriptors)
    monkeypatch.setattr(layout_module, "load_cache", counting_load_cache)
    return calls


def _forget() -> None:
    """As a process that never saw the layout."""
    layout_module._INDEX.clear()
    layout_module._GRAPHS.clear()


def test_adding_a_referrer_checks_only_the_entry_it_adds(
    layout: OCILayout, counted: dict[str, int]
) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    for n in range(20):
        attach(layout, image, f'{{"n":{n}}}'.encode(), artifact_type=SIGSTORE_BUNDLE_V03)
    counted["descriptors"] = counted["load_cache"] = 0
    added = attach(layout, image, b'{"n":"new"}', artifact_type=SIGSTORE_BUNDLE_V03)
    other = OCILayout.open(layout.path)  # as the next gate opens it
    assert added.digest in {d.digest for d in other.referrers(image.digest)}
    assert counted == {"descriptors": 0, "load_cache": 0}

    # what the process kept is what a fresh parse of the bytes written gives
    data = (layout.path / "index.json").read_bytes()
    assert canonical.dumps(json.loads(data)) == data
    kept = layout.entries()
    graph = layout.graph()
    _forget()
    fresh = OCILayout.open(layout.path)
    assert fresh.entries() == kept
    assert dict(fresh.graph().nodes) == dict(graph.nodes)
    assert counted["descriptors"] == 1
    assert counted["load_cache"] == 1


def test_a_changed_graph_cache_file_is_read_again(
    layout: OCILayout, counted: dict[str, int]
) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    rva = attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    CountingLayout.scans = 0
    counted["load_cache"] = 0
    assert [d.digest for d in CountingLayout(layout.path).referrers(image.digest)] == [rva.digest]
    assert counted["load_cache"] == 0
    assert CountingLayout.scans == 0
    # another process replaces the file (the same graph, a new file): read, not trusted blind
    cache = layout.path / ".stella" / "manifests.json"
    copy = cache.with_name("copy")
    shutil.copyfile(cache, copy)
    os.replace(copy, cache)
    assert [d.digest for d in CountingLayout(layout.path).referrers(image.digest)] == [rva.digest]
    assert counted["load_cache"] == 1
    assert CountingLayout.scans == 0
    # damaged: rebuilt from the manifests, as before
    cache.write_bytes(b"\x00not json")
    assert [d.digest for d in CountingLayout(layout.path).referrers(image.digest)] == [rva.digest]
    assert CountingLayout.scans == 2  # the image and its referrer
    assert json.loads(cache.read_bytes())["version"] == 1


def test_an_index_damaged_by_another_writer_is_refused_not_overwritten(
    layout: OCILayout,
) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    index = layout.path / "index.json"
    doc = json.loads(index.read_bytes())
    doc["manifests"].append({"mediaType": "not a media type", "digest": "sha256:00", "size": -1})
    damaged = json.dumps(doc).encode()
    index.write_bytes(damaged)
    with pytest.raises(OCILayoutError):
        attach(layout, image, b'{"n":1}', artifact_type=SIGSTORE_BUNDLE_V03)
    assert index.read_bytes() == damaged


def test_a_tag_moved_by_another_tool_is_seen_by_the_next_update(layout: OCILayout) -> None:
    one = build_image(layout, {"a": b"a"}, tag="v1").manifest
    two = build_image(layout, {"b": b"b"}).manifest
    index = layout.path / "index.json"
    doc = json.loads(index.read_bytes())
    doc["manifests"] = [two.with_annotations({"org.opencontainers.image.ref.name": "v1"}).to_dict()]
    index.write_text(json.dumps(doc, indent=2))  # another tool's bytes
    layout.tag("v2", one)
    assert layout.resolve("v1").digest == two.digest
    assert layout.resolve("v2").digest == one.digest


def _reference_bytes(graph: Graph) -> bytes:
    return canonical.dumps(
        {
            "version": 1,
            "index": str(graph.index_digest),
            "manifests": {str(d): n.to_dict() for d, n in graph.nodes.items()},
        }
    )


def test_the_graph_cache_is_canonical_json_written_again_or_not(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03, annotations={"é": "ü"})
    graph = layout.graph()
    assert graph.to_bytes() == _reference_bytes(graph)
    assert graph.to_bytes() == _reference_bytes(graph)  # from the nodes serialized before
    attach(layout, image, b'{"n":2}', artifact_type=SIGSTORE_BUNDLE_V03)
    after = layout.graph()
    assert len(after.nodes) == len(graph.nodes) + 1
    assert after.to_bytes() == _reference_bytes(after)
    assert (layout.path / ".stella" / "manifests.json").read_bytes() == after.to_bytes()
