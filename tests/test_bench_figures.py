"""README's measured table is the one bench/figures.py makes from bench/results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import figures

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_is_made_from_the_recorded_figures() -> None:
    assert figures.main(["--check"]) == 0, "run: python bench/figures.py"


def test_every_result_file_is_well_formed() -> None:
    results = sorted((REPO / "bench/results").glob("*.json"))
    assert results, "no benchmark has recorded its figures (run make bench)"
    for path in results:
        doc = json.loads(path.read_text())
        assert doc["bench"] == path.stem
        assert doc["figures"]
        for raw in doc["figures"]:
            figure = figures.Figure(**raw)
            assert figure.what
            assert figure.figure
            assert figure.met in (True, False, None)


def test_render_lists_missed_targets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "bench": "x",
                "measured": "2026-12-06",
                "cores": 2,
                "figures": [
                    {"what": "a", "figure": "1 s", "target": "≤ 2 s", "met": True},
                    {"what": "b", "figure": "3 s", "target": "≤ 2 s", "met": False},
                ],
            }
        )
    )
    text = figures.render()
    assert "| a | 1 s | ≤ 2 s |" in text
    assert "| b | 3 s | ≤ 2 s (missed) |" in text
    assert "Targets missed (1): b (3 s; target ≤ 2 s)." in text
