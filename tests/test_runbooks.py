"""The commands shown to operators exist: every ``stella`` and ``stella-mirror`` line in a
``sh`` block of docs/runbooks.md and README.md names a real command path with options that
exist (resolved through click, as the programs parse them). And the runbooks that can run
here run end to end: key rotation, knowledge rollback, backup and restore."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella_cli
from appliance.home import Home
from mirror.cli import cli as mirror_cli
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.conftest import require_tools

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DOCUMENTS = (RUNBOOKS, ROOT / "README.md")
PROGRAMS: dict[str, click.Command] = {"stella": stella_cli, "stella-mirror": mirror_cli}
KEV = ROOT / "tests" / "data" / "feeds" / "kev" / "known_exploited_vulnerabilities.json"
SITE = "usr/local/lib/python3.11/site-packages"

_BLOCK = re.compile(r"^\s*```sh\n(.*?)^\s*```", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"<[^<>\n]*>")
_SEPARATORS = {"|", "||", "&&", ";"}


@dataclass(frozen=True, slots=True)
class Shown:
    """One command line as a document shows it."""

    where: str  # file:line
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def shown_commands(path: Path) -> list[Shown]:
    """Every ``stella``/``stella-mirror`` invocation in the ``sh`` blocks of ``path``: comments
    dropped, continuation lines joined, ``<placeholders>`` kept as one word, pipelines and
    ``&&`` lists split, and ``sudo -u USER``/``env VAR=…`` prefixes skipped."""
    text = path.read_text(encoding="utf-8")
    found: list[Shown] = []
    for block in _BLOCK.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).replace("\\\n", " ").splitlines()
        for offset, line in enumerate(lines):
            words = _words(_PLACEHOLDER.sub("PLACEHOLDER", line))
            for segment in _segments(words):
                argv = _strip_prefixes(segment)
                if argv and argv[0] in PROGRAMS:
                    found.append(Shown(f"{path.name}:{first + offset}", tuple(argv)))
    return found


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _segments(words: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for word in words:
        if word in _SEPARATORS:
            out.append([])
        else:
            out[-1].append(word)
    return [s for s in out if s]


def _strip_prefixes(words: list[str]) -> list[str]:
    while words:
        if words[0] == "sudo":
            words = words[3:] if words[1:2] == ["-u"] else words[1:]
        elif words[0] == "env" or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words = words[1:]
        else:
            break
    return words


def _options(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts}


def check_command(argv: tuple[str, ...]) -> str:
    """The resolved command path (``stella snapshot activate``), or AssertionError naming
    what does not exist: a command, an option of the group or command it was given to, or
    more arguments than the command takes."""
    command: click.Command = PROGRAMS[argv[0]]
    path = [argv[0]]
    ctx = click.Context(command, info_name=argv[0])
    words = list(argv[1:])
    positionals: list[str] = []
    while words:
        word = words.pop(0)
        if word.startswith("-") and word != "-":
            name, eq, _ = word.partition("=")
            option = _options(command).get(name)
            if name == "--help" and command.get_help_option(ctx) is not None:
                continue
            assert option is not None, f"'{' '.join(path)}' has no option {name}"
            if not option.is_flag and not option.count and not eq:
                assert words, f"'{' '.join(path)}': option {name} needs a value"
                words.pop(0)
            continue
        if isinstance(command, click.Group):
            sub = command.get_command(ctx, word)
            assert sub is not None, f"'{' '.join(path)}' has no command {word!r}"
            path.append(word)
            command = sub
            ctx = click.Context(command, parent=ctx, info_name=word)
            continue
        positionals.append(word)
    assert not isinstance(command, click.Group), f"'{' '.join(path)}' needs a command"
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    unlimited = any(a.nargs < 0 for a in arguments)
    most = sum(max(a.nargs, 0) for a in arguments)
    assert unlimited or len(positionals) <= most, (
        f"'{' '.join(path)}' takes {most} arguments, the line gives {len(positionals)}: "
        f"{positionals}"
    )
    required = sum(max(a.nargs, 1) for a in arguments if a.required)
    assert len(positionals) >= required, f"'{' '.join(path)}' needs {required} arguments"
    return " ".join(path)


SHOWN = [c for doc in DOCUMENTS for c in shown_commands(doc)]


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_every_command_shown_exists_with_its_options(shown: Shown) -> None:
    check_command(shown.argv)


def test_the_runbooks_show_the_commands_they_are_about() -> None:
    paths = {check_command(c.argv) for c in shown_commands(RUNBOOKS)}
    assert {
        "stella-mirror keys rotate",
        "stella trust rotate",
        "stella snapshot activate",
        "stella rescan",
        "stella snapshot prune",
        "stella gc",
        "stella audit head",
        "stella audit verify",
        "stella doctor",
        "stella keys export-public",
        "stella verify",
    } <= paths
    readme = {check_command(c.argv) for c in shown_commands(ROOT / "README.md")}
    assert {"stella-mirror keys generate", "stella import"} <= readme


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("stella rescan --every", "'stella rescan' has no option --every"),
        ("stella snapshot rollback X", "'stella snapshot' has no command 'rollback'"),
        ("stella --homedir /x doctor", "'stella' has no option --homedir"),
        ("stella snapshot activate A B", "'stella snapshot activate' takes 1 arguments"),
        ("stella snapshot activate", "'stella snapshot activate' needs 1 arguments"),
        ("stella-mirror keys rotate --keys", "option --keys needs a value"),
        ("stella snapshot", "'stella snapshot' needs a command"),
    ],
)
def test_a_wrong_line_would_be_caught(tmp_path: Path, line: str, message: str) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"text\n\n```sh\nsudo -u stella {line}   # comment\n```\n")
    (shown,) = shown_commands(doc)
    assert shown.where == "doc.md:4"
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_command(shown.argv)


def test_extraction_splits_lists_and_keeps_placeholders_whole(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```sh\n"
        "STELLA_HOME=/h stella snapshot show <a digest> && stella-mirror snapshot list | cat\n"
        "stella images \\\n  list\n"
        "echo stella is not a command here\n"
        "```\n"
        "```python\nstella = 1\n```\n"
    )
    assert [c.argv for c in shown_commands(doc)] == [
        ("stella", "snapshot", "show", "PLACEHOLDER"),
        ("stella-mirror", "snapshot", "list"),
        ("stella", "images", "list"),
    ]


# ----------------------------------------------------------------- end to end


def run(prog: click.Command, *args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(prog, ["--json", *args])
    assert result.exit_code == code, f"{args}: {result.stderr or result.output}"
    return json.loads(result.stdout) if result.stdout.strip() else {}


def documented(line: str) -> None:
    """The runbook shows this exact command line (the test runs what operators read)."""
    assert line in RUNBOOKS.read_text(encoding="utf-8"), f"runbooks.md does not show {line!r}"


class Mirror:
    """A mirror workspace whose knowledge is a slice of the real KEV catalogue."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "mirror"
        self.keys = root / "keys"
        self.feeds = root / "feeds"
        self.feeds.mkdir(parents=True)
        self.run("keys", "generate", "--out", str(self.keys))

    def run(self, *args: str, code: int = 0) -> dict[str, Any]:
        return run(mirror_cli, "--home", str(self.home), *args, code=code)

    def snapshot(self, entries: int) -> str:
        doc = json.loads(KEV.read_text())
        doc["vulnerabilities"] = doc["vulnerabilities"][:entries]
        doc["count"] = entries
        kev = self.feeds / f"kev-{entries}.json"
        kev.write_text(json.dumps(doc))
        config = self.feeds / "mirror.toml"
        config.write_text(f'[[source]]\nname = "kev"\nkind = "kev"\npath = "{kev}"\n')
        self.run("sync", "--config", str(config))
        return str(self.run("snapshot", "build")["digest"])

    def export(self, name: str, *args: str, key: Path | None = None) -> Path:
        out = self.root / name
        key = key or self.keys / "signing.key"
        self.run("export", "--out", str(out), "--key", str(key), *args)
        return out


class Appliance:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str, code: int = 0) -> dict[str, Any]:
        return run(stella_cli, "--home", str(self.home), *args, code=code)

    def active(self) -> str:
        rows = self.run("snapshot", "list")["snapshots"]
        return str(next(r["digest"] for r in rows if r["active"]))


@pytest.fixture
def sides(tmp_path: Path, offline: None) -> tuple[Mirror, Appliance]:
    mirror = Mirror(tmp_path)
    appliance = Appliance(tmp_path / "appliance")
    appliance.run("init")
    appliance.run("trust", "add", str(mirror.keys / "trust-root.json"))
    return mirror, appliance


def test_runbook_key_rotation(sides: tuple[Mirror, Appliance]) -> None:
    mirror, appliance = sides
    mirror.snapshot(3)
    appliance.run("import", str(mirror.export("one.stella.tar.zst")))
    old_key = mirror.keys / "signing.key"
    old_bytes = old_key.read_bytes()

    documented("stella-mirror keys rotate --keys keys --signing")
    rotated = mirror.run("keys", "rotate", "--keys", str(mirror.keys), "--signing")
    assert rotated["version"] == 2
    mirror.snapshot(4)
    documented("stella-mirror export --out next.stella.tar.zst --key keys/signing.key")
    bundle = mirror.export("next.stella.tar.zst")
    documented("stella-mirror verify next.stella.tar.zst --trust-root keys/trust-root.json")
    mirror.run("verify", str(bundle), "--trust-root", str(mirror.keys / "trust-root.json"))

    documented("stella trust rotate /media/dvd/trust-root.json")
    appliance.run("trust", "rotate", str(mirror.keys / "trust-root.json"))
    (root,) = appliance.run("trust", "list")["roots"]
    assert root["version"] == 2
    documented("stella import /media/dvd/next.stella.tar.zst")
    imported = appliance.run("import", str(bundle))
    assert imported["sequence"] == 2
    assert appliance.active() == imported["snapshot"]
    records = appliance.run("audit", "list", "--action", "trust")["records"]
    assert isinstance(records, list)
    assert [r["action"] for r in records] == ["trust.add", "trust.rotate"]

    # a bundle signed with the revoked key is refused and changes nothing
    (retired,) = (mirror.keys / "retired").glob("signing-*.key")
    assert retired.read_bytes() == old_bytes
    mirror.snapshot(5)
    stale = mirror.export("stale.stella.tar.zst", "--channel", root["channel"], key=retired)
    appliance.run("import", str(stale), code=1)
    assert appliance.active() == imported["snapshot"]


def test_runbook_knowledge_rollback(sides: tuple[Mirror, Appliance]) -> None:
    mirror, appliance = sides
    build_image(appliance.home / "oci", [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    good = mirror.snapshot(3)
    appliance.run("import", str(mirror.export("good.stella.tar.zst")))
    bad = mirror.snapshot(4)
    bad_bundle = mirror.export("bad.stella.tar.zst")
    appliance.run("import", str(bad_bundle))
    assert appliance.active() == bad

    documented("stella snapshot activate <digest-prefix>")
    activated = appliance.run("snapshot", "activate", good.removeprefix("sha256:")[:12])
    assert (activated["active"], activated["previous"]) == (good, bad)
    assert appliance.active() == good
    documented("stella audit list --action snapshot.activate")
    (record,) = appliance.run("audit", "list", "--action", "snapshot.activate")["records"]
    assert record["subject"] == good
    assert (appliance.home / "snapshot.activated").is_file()  # what stella-rescan.path watches
    documented("stella rescan")
    rescanned = appliance.run("rescan")
    assert (rescanned["snapshot"], rescanned["gated"], rescanned["failed"]) == (good, 1, 0)

    # the bad bundle cannot come back; the mirror's next one imports and becomes active
    appliance.run("import", str(bad_bundle), code=1)
    assert appliance.active() == good
    fixed = mirror.snapshot(5)
    documented("stella-mirror export --out fixed.stella.tar.zst --key keys/signing.key")
    imported = appliance.run("import", str(mirror.export("fixed.stella.tar.zst")))
    assert (imported["sequence"], appliance.active()) == (3, fixed)


@pytest.mark.tools
def test_runbook_backup_and_restore(sides: tuple[Mirror, Appliance], tmp_path: Path) -> None:
    require_tools("tar", "zstd")
    mirror, appliance = sides
    mirror.snapshot(3)
    appliance.run("import", str(mirror.export("one.stella.tar.zst")))
    build_image(appliance.home / "oci", [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    appliance.run("rescan")
    before = appliance.run("audit", "list")["records"]

    # backup: the home quiesced (no stella process runs in this test), the signed head, tar
    documented("stella audit head --out /var/lib/stella/staging/head.json")
    head = tmp_path / "head.json"
    appliance.run("audit", "head", "--out", str(head))
    documented("tar --create --zstd --file /var/backups/stella-<date>.tar.zst -C /var/lib stella")
    archive = tmp_path / "backup.tar.zst"
    parent, name = str(appliance.home.parent), appliance.home.name
    tar = ["tar", "--create", "--zstd", "--file", str(archive), "-C", parent, name]
    subprocess.run(tar, check=True)

    # the disaster: the state database is lost, and more happened after the backup
    appliance.run("rescan")
    (appliance.home / "state.db").unlink()
    documented("mv /var/lib/stella /var/lib/stella.damaged")
    appliance.home.rename(tmp_path / "damaged")

    documented("tar --extract --zstd --file /var/backups/stella-<date>.tar.zst -C /var/lib")
    subprocess.run(["tar", "--extract", "--zstd", "--file", str(archive), "-C", parent], check=True)
    documented("stella doctor")
    doctor = appliance.run("doctor")
    assert all(c["status"] != "fail" for c in doctor["checks"]), doctor
    documented("stella audit verify --anchor /var/backups/stella-<date>.head.json")
    appliance.run("audit", "verify", "--anchor", str(head))
    assert appliance.run("audit", "list")["records"] == before
    appliance.run("rescan")

    # a log that lost records since the head was exported is caught
    shutil.rmtree(appliance.home)
    subprocess.run(["tar", "--extract", "--zstd", "--file", str(archive), "-C", parent], check=True)
    later = tmp_path / "later.json"
    appliance.run("rescan")
    appliance.run("audit", "head", "--out", str(later))
    shutil.rmtree(appliance.home)
    subprocess.run(["tar", "--extract", "--zstd", "--file", str(archive), "-C", parent], check=True)
    appliance.run("audit", "verify", "--anchor", str(later), code=1)
    assert Home(appliance.home).initialized
