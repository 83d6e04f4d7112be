"""The hostile-input harness itself: capped children, exact errors, state captured."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.harness import assert_refused, leftovers, run, state


def test_state_of_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("stella", "init", home=home).code == 0
    before = state(home)
    assert before["audit"]["exit"] == 0
    assert before["leftovers"] == []
    assert state(home) == before


def test_a_missing_bundle_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("stella", "init", home=home)
    result = run("stella", "verify", tmp_path / "nope.json", home=home)
    assert_refused(result, "…", code=result.code)
    assert result.code != 0
    assert result.peak_rss > 0


def test_leftovers_finds_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "oci/.stella/tmp").mkdir(parents=True)
    (tmp_path / "oci/.stella/tmp/blob-1.tmp").write_bytes(b"x")
    (tmp_path / "keep.json").write_text("{}")
    assert leftovers(tmp_path) == ["oci/.stella/tmp/blob-1.tmp"]
