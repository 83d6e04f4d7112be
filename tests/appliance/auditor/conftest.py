from __future__ import annotations

from pathlib import Path

import pytest

from appliance.home import Home
from appliance.rva.gate import GateResult
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot, gate_app, make_home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = make_home(tmp_path)
    add_snapshot(h, BASE_RECORDS, 1)
    return h


@pytest.fixture
def gated(home: Home) -> GateResult:
    return gate_app(home)


@pytest.fixture
def rva_file(tmp_path: Path, gated: GateResult) -> Path:
    path = tmp_path / "verdict.sigstore.json"
    path.write_bytes(gated.bundle)
    return path
