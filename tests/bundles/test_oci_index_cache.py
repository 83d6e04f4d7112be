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
    layout_module._GRAPH_FROM.clear()
    layout_module._TAGGED.clear()
    layout_module._CANONICAL.clear()


def image_with_referrers(layout: OCILayout, count: int) -> Descriptor:
    """An image tagged v1 with ``count`` referrers (Sigstore bundles)."""
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    for n in range(count):
        attach(layout, image, f'{{"n":{n}}}'.encode(), artifact_type=SIGSTORE_BUNDLE_V03)
    return image


def test_adding_a_referrer_checks_only_the_entry_it_adds(
    layout: OCILayout, counted: dict[str, int]
) -> None:
    image = image_with_referrers(layout, 20)
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
    # damaged, and read by a process that holds no graph of this layout (this one keeps the
    # graph it computed when it attached, and would only bring that up to date): rebuilt from
    # the manifests, as before
    cache.write_bytes(b"\x00not json")
    layout_module._GRAPH_FROM.clear()
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


def _reader_of(layout: OCILayout, old: bytes) -> CountingLayout:
    """A process that last parsed ``old`` and computed its graph (another one has written the
    layout since)."""
    _forget()
    reader = CountingLayout(layout.path)
    reader._refresh_graph(old, reader._parsed(old)[1], persist=False, reuse=False)
    return reader


def test_a_reader_parses_only_the_entries_another_writer_appended(
    layout: OCILayout, counted: dict[str, int]
) -> None:
    image = image_with_referrers(layout, 3)
    old = (layout.path / "index.json").read_bytes()
    added = [
        attach(layout, image, f'{{"m":{n}}}'.encode(), artifact_type=SIGSTORE_BUNDLE_V03)
        for n in range(2)
    ]
    reader = _reader_of(layout, old)
    counted["descriptors"] = 0
    CountingLayout.scans = 0
    found = reader.entries()
    assert counted["descriptors"] == 0  # the old entries are not parsed again
    assert {a.digest for a in added} <= {d.digest for d in reader.referrers(image.digest)}
    assert CountingLayout.scans == 2  # only the new manifests are read for the graph
    assert reader.resolve("v1").digest == image.digest
    graph = reader.graph()
    data = (layout.path / "index.json").read_bytes()
    doc = reader._parsed(data)[0]
    _forget()
    fresh = OCILayout.open(layout.path)
    assert fresh.entries() == found
    assert fresh._parsed(data)[0] == doc
    assert dict(fresh.graph().nodes) == dict(graph.nodes)


@pytest.mark.parametrize("change", ["untag", "rewritten by another tool"])
def test_an_index_changed_other_than_by_appending_is_parsed_whole(
    layout: OCILayout, counted: dict[str, int], change: str
) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    build_image(layout, {"b": b"b"}, tag="v2")
    attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    old = (layout.path / "index.json").read_bytes()
    index = layout.path / "index.json"
    if change == "untag":
        layout.untag("v2")
    else:  # the same entries and one more, indented: not the canonical bytes appended to
        doc = json.loads(old)
        doc["manifests"].append(doc["manifests"][-1] | {"annotations": {"x": "y"}})
        index.write_text(json.dumps(doc, indent=2))
    reader = _reader_of(layout, old)
    counted["descriptors"] = 0
    found = reader.entries()
    assert counted["descriptors"] == 1
    _forget()
    assert OCILayout.open(layout.path).entries() == found


def test_a_graph_rebuilt_reads_every_manifest_whatever_this_process_holds(
    layout: OCILayout,
) -> None:
    image_with_referrers(layout, 2)  # this process computed the graph as it attached
    CountingLayout.scans = 0
    rebuilt = CountingLayout(layout.path).graph(reuse=False)
    assert CountingLayout.scans == len(rebuilt.nodes) == 3  # the image and its two referrers


def test_a_bad_appended_entry_is_refused_as_in_a_whole_parse(
    layout: OCILayout, counted: dict[str, int]
) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    index = layout.path / "index.json"
    old = index.read_bytes()
    cut = old.rindex(b"]")
    index.write_bytes(
        old[:cut] + b',{"digest":"sha256:nope","mediaType":"a/b","size":1}' + old[cut:]
    )
    reader = _reader_of(layout, old)
    counted["descriptors"] = 0
    with pytest.raises(OCILayoutError) as appended:
        reader.entries()
    assert counted["descriptors"] == 0  # refused by the appended entries' own check
    _forget()
    with pytest.raises(OCILayoutError) as whole:
        OCILayout.open(layout.path).entries()
    assert str(appended.value) == str(whole.value)
    assert "manifests[2]" in str(whole.value)


def test_an_appended_referrer_is_spliced_into_the_canonical_bytes(
    layout: OCILayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = image_with_referrers(layout, 3)
    index = layout.path / "index.json"
    whole: list[int] = []
    dumps = canonical.dumps

    def counting(value: Any) -> bytes:
        if isinstance(value, dict) and "manifests" in value:
            whole.append(len(value["manifests"]))
        return dumps(value)

    monkeypatch.setattr(canonical, "dumps", counting)
    for n in range(3):
        attach(layout, image, f'{{"m":{n}}}'.encode(), artifact_type=SIGSTORE_BUNDLE_V03)
    assert whole == []  # the index this process wrote is known canonical: only spliced
    data = index.read_bytes()
    assert dumps(json.loads(data)) == data
    _forget()
    attach(layout, image, b'{"m":"x"}', artifact_type=SIGSTORE_BUNDLE_V03)
    assert len(whole) == 1  # a process that did not write it checks it once
    attach(layout, image, b'{"m":"y"}', artifact_type=SIGSTORE_BUNDLE_V03)
    assert len(whole) == 1
    assert dumps(json.loads(index.read_bytes())) == index.read_bytes()


def test_an_index_another_tool_wrote_is_rewritten_canonical_when_appended_to(
    layout: OCILayout,
) -> None:
    image = image_with_referrers(layout, 1)
    index = layout.path / "index.json"
    # compact, keys sorted, the same end: only an escape canonical JSON does not make
    other = index.read_bytes().replace(b'"v1"', b'"\\u0076\\u0031"')
    assert other != index.read_bytes()
    assert json.loads(other) == json.loads(index.read_bytes())
    index.write_bytes(other)
    _forget()
    attach(layout, image, b'{"m":1}', artifact_type=SIGSTORE_BUNDLE_V03)
    data = index.read_bytes()
    assert canonical.dumps(json.loads(data)) == data
    assert OCILayout.open(layout.path).resolve("v1").digest == image.digest
