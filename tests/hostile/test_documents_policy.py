"""Hostile Rego policy bundles handed to ``stella gate --policy DIR``: links out of the
directory, devices, files that are not UTF-8, huge or too many files, broken data.json.

A bad bundle is refused before the gate scans anything, with one exact line, exit 1, within the
memory ceiling, and the home unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.hostile.documents import (
    Template,
    case_fixtures,
    case_tests,
    deep_json,
    sparse_file,
)
from tests.hostile.harness import Run, run

E = "stella: error: "
RAISE = " (if this input is trusted and that large, raise the cap with {env}=N (docs/limits.md))"
REGO = b'package stella\n\nimport rego.v1\n\nverdict := "PASS"\n'

#: The one line each case is refused with; {d} is the policy directory.
EXPECTED: dict[str, str] = {
    "link-to-etc-passwd": E + "{d}/evil.rego: is a symbolic link to /etc/passwd, outside the "
    "policy directory {d} (copy the file into the policy directory instead of linking it)",
    "link-to-outside-directory": E + "{d}/lib: is a symbolic link to /etc, outside the policy "
    "directory {d} (copy the file into the policy directory instead of linking it)",
    "fifo": E + "{d}/wait.rego: is not a regular file (a policy bundle holds only files)",
    "not-utf8": E + "{d}/latin1.rego: not UTF-8 text (invalid continuation byte at byte 13) "
    "(policy files are UTF-8 text)",
    "huge-rego": E + "{d}/huge.rego: one .rego file of a policy bundle is over the "
    "policy.file_bytes cap of 4 MiB (found 5 MiB)"
    + RAISE.format(env="STELLA_LIMIT_POLICY_FILE_BYTES"),
    "huge-data": E + "{d}/data.json: one data.json file of a policy bundle is over the "
    "policy.data_bytes cap of 16 MiB (found 1 GiB)"
    + RAISE.format(env="STELLA_LIMIT_POLICY_DATA_BYTES"),
    "too-many-files": E + "{d}: the .rego and data.json files of a policy bundle is over the "
    "policy.files cap of 3 (found 4)" + RAISE.format(env="STELLA_LIMIT_POLICY_FILES"),
    "too-many-bytes": E + "{d}: the files of a policy bundle together is over the "
    "policy.total_bytes cap of 100 bytes (found 150 bytes)"
    + RAISE.format(env="STELLA_LIMIT_POLICY_TOTAL_BYTES"),
    "data-deep": E + "{d}/data.json: the nesting of arrays and objects in a JSON document is over "
    "the json.depth cap of 128 (found 200,000)" + RAISE.format(env="STELLA_LIMIT_JSON_DEPTH"),
    "data-array": E + "{d}/data.json: data.json must be a JSON object",
    "data-not-json": E + "{d}/data.json: not valid JSON: Expecting value: line 1 column 1 "
    "(char 0) (data.json must be a JSON object)",
    "mode-list": E + "{d}: stella.bundle.mode is an array (use 'enforce' or 'audit')",
    "id-object": E + "{d}: stella.bundle.id must be a string, not an object",
    "data-twice": E + "{d}/sub/data.json: data key 'allow' is defined twice in the bundle",
    "no-rego": E + "{d}: the policy bundle has no .rego file (a bundle is a directory of .rego "
    "files plus an optional data.json)",
    "missing": E + "policy directory {d} does not exist (pass a directory of .rego files (and "
    "data.json))",
}


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    build: Callable[[Path], None]  # fills the policy directory
    env: dict[str, str] = field(default_factory=dict)


def _files(**files: bytes) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        for name, data in files.items():
            path = d / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return build


def _with(extra: Callable[[Path], object]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        (d / "policy.rego").write_bytes(REGO)
        extra(d)

    return build


def _data(doc: object) -> Callable[[Path], None]:
    return _files(**{"policy.rego": REGO, "data.json": json.dumps(doc).encode()})


def _missing(d: Path) -> None:
    d.rmdir()


CASES = [
    Case("link-to-etc-passwd", _with(lambda d: (d / "evil.rego").symlink_to("/etc/passwd"))),
    Case("link-to-outside-directory", _with(lambda d: (d / "lib").symlink_to("/etc"))),
    Case("fifo", _with(lambda d: os.mkfifo(d / "wait.rego"))),
    Case(
        "not-utf8",
        _with(lambda d: (d / "latin1.rego").write_bytes(b"package x\n# r\xe9gle en fran\xe7ais\n")),
    ),
    Case("huge-rego", _with(lambda d: sparse_file(d / "huge.rego", 5 << 20, b"package x\n"))),
    Case("huge-data", _with(lambda d: sparse_file(d / "data.json", 1 << 30, b"{"))),
    Case(
        "too-many-files",
        _files(**{f"p{n}.rego": REGO for n in range(4)}),
        env={"STELLA_LIMIT_POLICY_FILES": "3"},
    ),
    Case(
        "too-many-bytes",
        _files(**{f"p{n}.rego": REGO for n in range(3)}),
        env={"STELLA_LIMIT_POLICY_TOTAL_BYTES": "100"},
    ),
    Case("data-deep", _with(lambda d: (d / "data.json").write_bytes(deep_json()))),
    Case("data-array", _data([1, 2])),
    Case("data-not-json", _with(lambda d: (d / "data.json").write_bytes(b"allow = true"))),
    Case("mode-list", _data({"stella": {"bundle": {"mode": ["enforce"]}}})),
    Case("id-object", _data({"stella": {"bundle": {"id": {"name": "x"}}}})),
    Case(
        "data-twice",
        _files(
            **{
                "policy.rego": REGO,
                "data.json": b'{"allow": ["a"]}',
                "sub__data.json": b'{"allow": ["b"]}',
            }
        ),
    ),
    Case("no-rego", _files(**{"data.json": b"{}", "README.md": b"# policy"})),
    Case("missing", _missing),
]


def execute(case: Case, tmp: Path, made: Template, home: Path) -> tuple[Run, dict[str, Any]]:
    policy = tmp / "policy"
    policy.mkdir()
    case.build(policy)
    argv: list[str | Path] = ["gate", "app:1", "--policy", policy]
    return run("stella", *argv, home=home, env=case.env), {"d": policy}


made, home, outcomes = case_fixtures("policy", CASES, execute)


(
    test_hostile_policy_bundle_is_refused,
    test_every_case_has_its_line,
    test_what_a_user_sees_is_unchanged_after_every_refusal,
) = case_tests(CASES, EXPECTED)
