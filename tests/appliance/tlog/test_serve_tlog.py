"""``stella serve`` serves the transparency log read-only at the C2SP tlog-tiles paths; a
client that knows only the log key checks the served head against the served tiles."""

from __future__ import annotations

from pathlib import Path

import requests

from appliance import tlog
from appliance.registry.server import ListenAddress, RegistryServer, ServeOptions
from bundles.tlog.merkle import leaf_hash, perfect_root, tree_root
from bundles.tlog.note import SignedCheckpoint
from bundles.tlog.tiles import decode_bundle, decode_tile
from tests.appliance.registry.homes import gated_home


def test_tiles_and_checkpoint_are_served_read_only(tmp_path: Path) -> None:
    home, _ = gated_home(tmp_path / "home")
    log_key = tlog.verifier(home)
    options = ServeOptions(ListenAddress("127.0.0.1", 0), False, None)
    with RegistryServer(home, options) as server:
        s = requests.Session()
        s.trust_env = False
        base = f"http://{server.address}/tlog"
        got = s.get(f"{base}/checkpoint")
        assert got.status_code == 200
        assert got.headers["Cache-Control"] == "no-cache"
        head = SignedCheckpoint.parse(got.content).verify(log_key)
        assert head.size == 2
        hashes = decode_tile(s.get(f"{base}/tile/0/000.p/2").content, 2, source="tile")
        entries = decode_bundle(s.get(f"{base}/tile/entries/000.p/2").content, 2, source="b")
        assert [leaf_hash(e) for e in entries] == hashes
        assert (
            tree_root(2, lambda level, index: perfect_root(hashes[index << level :][: 1 << level]))
            == head.root
        )
        assert s.get(f"{base}/tile/0/001").status_code == 404
        assert s.get(f"{base}/log.key").status_code == 404  # only the C2SP paths
        assert s.get(f"{base}/tile/../log.key").status_code == 404
        refused = s.put(f"{base}/checkpoint", data=b"x")
        assert refused.status_code == 405
