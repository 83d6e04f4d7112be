"""Policy bundles: identity over canonical content (the same as the mirror records), the
bundle's name and mode from data.json, and clear load errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.policy.bundle import DEFAULT_DIR, PolicyBundle, PolicyLoadError, PolicyMode
from bundles import canonical
from bundles.digest import Digest
from bundles.limits import LimitError

REGO = "package stella.policy\n\ndeny contains 1 if false\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_default_bundle_is_named_and_enforcing() -> None:
    bundle = PolicyBundle.default()
    assert (bundle.id, bundle.version, bundle.mode) == (
        "stella-default",
        "1.0.0",
        PolicyMode.ENFORCE,
    )
    assert [f.path for f in bundle.files] == ["data.json", "stella.rego"]


def test_digest_is_the_mirrors_definition_and_ignores_file_order(tmp_path: Path) -> None:
    bundle = PolicyBundle.from_directory(DEFAULT_DIR)
    listing = sorted(
        (p.relative_to(DEFAULT_DIR).as_posix(), Digest.of_bytes(p.read_bytes()).hex)
        for p in DEFAULT_DIR.iterdir()
    )
    expected = canonical.digest([{"path": p, "sha256": d} for p, d in listing])
    assert bundle.digest == expected
    records = [
        {"id": f.path, "content": f.content, "sha256": f.sha256, "size": len(f.content)}
        for f in reversed(bundle.files)
    ]
    assert PolicyBundle.from_records(records, source="snapshot").digest == expected


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    one = PolicyBundle.from_directory(write(tmp_path / "a", {"p.rego": REGO}))
    two = PolicyBundle.from_directory(write(tmp_path / "b", {"p.rego": REGO + "# note\n"}))
    assert one.digest != two.digest
    assert one.id == f"policy-{one.digest.short()}"
    assert one.version == "0"


def test_test_files_and_other_files_are_not_part_of_the_bundle(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "p.rego": REGO,
            "p_test.rego": "package x\n",
            "README.md": "hi",
            "sub/q.rego": REGO.replace("stella.policy", "stella.lib"),
        },
    )
    assert [f.path for f in PolicyBundle.from_directory(root).files] == ["p.rego", "sub/q.rego"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"data.json": "{}"}, "has no .rego file"),
        ({"p.rego": REGO, "data.json": "[1]"}, "data.json must be a JSON object"),
        ({"p.rego": REGO, "data.json": "{"}, "not valid JSON"),
        (
            {"p.rego": REGO, "data.json": '{"stella": {"bundle": {"mode": "warn"}}}'},
            "stella.bundle.mode is 'warn'",
        ),
        (
            {"p.rego": REGO, "data.json": '{"stella": {"bundle": "v1"}}'},
            "stella.bundle must be an object",
        ),
        (
            {"p.rego": REGO, "data.json": '{"a": 1}', "sub/data.json": '{"a": 2}'},
            "data key 'a' is defined twice",
        ),
    ],
)
def test_bad_bundles(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyLoadError, match=message):
        PolicyBundle.from_directory(write(tmp_path, files))


def test_missing_directory_and_tampered_record(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="does not exist"):
        PolicyBundle.from_directory(tmp_path / "nope")
    record = {"id": "p.rego", "content": REGO, "sha256": "0" * 64, "size": 1}
    with pytest.raises(PolicyLoadError, match="its record says"):
        PolicyBundle.from_records([record], source="snapshot dataset policy")


def test_a_link_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"a.rego": REGO})
    (root / "evil.rego").symlink_to("/etc/passwd")
    with pytest.raises(PolicyLoadError, match="evil.rego: is a symbolic link to /etc/passwd"):
        PolicyBundle.from_directory(root)


def test_a_link_inside_the_directory_is_read(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"lib/a.rego": REGO})
    (root / "b.rego").symlink_to(root / "lib" / "a.rego")
    bundle = PolicyBundle.from_directory(root)
    assert [f.path for f in bundle.files] == ["b.rego", "lib/a.rego"]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"a.rego": REGO})
    os.mkfifo(root / "wait.rego")
    with pytest.raises(PolicyLoadError, match="wait.rego: is not a regular file"):
        PolicyBundle.from_directory(root)


def test_file_caps_are_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(tmp_path / "p", {"a.rego": REGO, "b.rego": REGO})
    monkeypatch.setenv("STELLA_LIMIT_POLICY_FILES", "1")
    with pytest.raises(LimitError, match="policy.files"):
        PolicyBundle.from_directory(root)
    monkeypatch.delenv("STELLA_LIMIT_POLICY_FILES")
    with open(root / "data.json", "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(LimitError, match="policy.data_bytes"):
        PolicyBundle.from_directory(root)
